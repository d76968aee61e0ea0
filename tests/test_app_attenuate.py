"""The Attenuate page, run through app.py with a tiny model in the sidebar."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 60
SHORT_TEXT = "The cat sat on the mat. The dog sat on the log."


@pytest.fixture
def attenuate(tiny_folders, monkeypatch) -> AppTest:
    """The app switched to its Attenuate page, with the tiny Llama model (5 blocks)."""
    monkeypatch.setenv("RSHIFT_MODEL", str(tiny_folders["llama_tied"]))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/attenuate.py").run()
    at.text_area(key="attenuate_text").input(SHORT_TEXT).run()
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in at.metric}


def test_default_view(attenuate):
    assert not attenuate.exception
    assert not attenuate.error
    assert attenuate.slider(key="attenuate_layer").value == 4
    assert attenuate.slider(key="attenuate_alpha").value == 0.5
    assert float(metrics(attenuate)["Perplexity, attenuated"].replace(",", "")) > 0
    assert attenuate.metric[1].delta.endswith("%")
    assert len(attenuate.code) == 0


def test_continuation_toggle_shows_both(attenuate):
    attenuate.toggle(key="attenuate_continuation").set_value(True).run()
    assert not attenuate.exception
    assert len(attenuate.code) == 2


def test_alpha_changes_perplexity(attenuate):
    before = metrics(attenuate)["Perplexity, attenuated"]
    attenuate.slider(key="attenuate_alpha").set_value(0.1).run()
    assert not attenuate.exception
    assert metrics(attenuate)["Perplexity, attenuated"] != before


def test_layer_changes_perplexity(attenuate):
    before = metrics(attenuate)["Perplexity, attenuated"]
    attenuate.slider(key="attenuate_layer").set_value(1).run()
    assert not attenuate.exception
    assert metrics(attenuate)["Perplexity, attenuated"] != before


def test_alpha_one_is_unmodified(attenuate):
    attenuate.slider(key="attenuate_alpha").set_value(1.0).run()
    values = metrics(attenuate)
    assert values["Perplexity, attenuated"] == values["Perplexity, unmodified"]
    assert values["Same top prediction"] == "100%"


@pytest.mark.parametrize("mode", ["attention", "mlp"])
def test_sublayer_modes(attenuate, mode):
    attenuate.radio(key="attenuate_scope").set_value("from").run()
    attenuate.radio(key="attenuate_mode").set_value(mode).run()
    assert not attenuate.exception
    assert not attenuate.error


def test_extreme_setting(attenuate):
    attenuate.slider(key="attenuate_layer").set_value(5).run()
    attenuate.slider(key="attenuate_alpha").set_value(0.0).run()
    assert not attenuate.exception
    assert "nan" not in metrics(attenuate)["Perplexity, attenuated"].lower()


def test_setting_in_query(attenuate):
    attenuate.slider(key="attenuate_alpha").set_value(0.25).run()
    assert attenuate.query_params["alpha"] == "0.25"
    assert attenuate.query_params["layer"] == "4"


def test_landscape(attenuate):
    charts_before = len(attenuate.get("vega_lite_chart"))
    attenuate.selectbox(key="attenuate_step").set_value(0.25).run()
    attenuate.button(key="attenuate_sweep").click().run()
    assert not attenuate.exception
    assert not attenuate.error
    assert len(attenuate.get("vega_lite_chart")) == charts_before + 1


def test_maps_toggle(attenuate):
    charts_before = len(attenuate.get("vega_lite_chart"))
    attenuate.toggle(key="attenuate_maps").set_value(False).run()
    assert not attenuate.exception
    assert len(attenuate.get("vega_lite_chart")) == charts_before - 3


def test_empty_prompt(attenuate):
    attenuate.text_area(key="attenuate_text").input("").run()
    assert not attenuate.exception
    assert "empty" in attenuate.error[0].value


def test_single_token(attenuate):
    attenuate.text_area(key="attenuate_text").input("The").run()
    assert not attenuate.exception
    assert not attenuate.error
    assert metrics(attenuate)["Perplexity, attenuated"] == "undefined"
