"""The Explore page, run through app.py with a tiny model in the sidebar."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 60


@pytest.fixture
def explore(tiny_folders, monkeypatch) -> AppTest:
    """The app on its Explore page (the default one), with the tiny Llama model."""
    monkeypatch.setenv("RSHIFT_MODEL", str(tiny_folders["llama_tied"]))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    return at.run()


def metrics(at: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in at.metric}


def test_default_view(explore):
    assert not explore.exception
    assert not explore.error
    assert explore.title[0].value == "Explore"
    assert metrics(explore)["Median shift layer"].endswith("of 5")
    assert metrics(explore)["Perplexity"] not in ("undefined", "diverged", "nan")
    assert len(explore.get("vega_lite_chart")) == 2


def test_truncation_notice(explore):
    # The tiny model's context is 128 tokens, and the default sample is longer.
    assert any("kept the first 128" in warning.value for warning in explore.warning)


def test_empty_prompt(explore):
    explore.text_area(key="explore_text").input("   ").run()
    assert not explore.exception
    assert "empty" in explore.error[0].value
    assert explore.selectbox(key="explore_metric").value == "logprob"
    assert not explore.get("vega_lite_chart")


def test_single_token(explore):
    explore.text_area(key="explore_text").input("The").run()
    assert not explore.exception
    assert not explore.error
    assert metrics(explore)["Perplexity"] == "undefined"
    assert "single token" in explore.info[0].value


def test_sample_picker(explore):
    explore.selectbox(key="explore_sample").set_value("Code snippet").run()
    assert explore.text_area(key="explore_text").value.startswith("def moving_average")
    assert not explore.exception


@pytest.mark.parametrize("family", ["rank", "cosine", "projection_normed"])
def test_metric_switch(explore, family):
    explore.selectbox(key="explore_metric").set_value(family).run()
    assert not explore.exception
    assert not explore.error
    assert explore.query_params["metric"] == family


def test_exclusion_switches(explore):
    explore.toggle(key="explore_skip_sinks").set_value(True).run()
    explore.toggle(key="explore_show_shift").set_value(False).run()
    assert not explore.exception
    assert len(explore.get("vega_lite_chart")) == 2
