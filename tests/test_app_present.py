"""The Present page, run through app.py with a tiny model in the sidebar."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 60
SHORT_TEXT = "The cat sat on the mat. The dog sat on the log."


@pytest.fixture
def app(tiny_folders, monkeypatch) -> AppTest:
    """The app on its Explore page with a short text and the tiny Llama model."""
    monkeypatch.setenv("RSHIFT_MODEL", str(tiny_folders["llama_tied"]))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.text_area(key="explore_text").input(SHORT_TEXT).run()
    return at


@pytest.fixture
def deck(app) -> AppTest:
    """The Present page after adding the Explore page's two figures."""
    app.button(key="present_explore_maps").click().run()
    app.button(key="present_explore_fraction").click().run()
    return app.switch_page("pages/present.py").run()


def test_no_figures(app):
    app.switch_page("pages/present.py").run()
    assert not app.exception
    assert "No figures yet" in app.info[0].value
    assert not app.download_button


def test_shows_first_figure(deck):
    assert not deck.exception
    assert not deck.error
    assert deck.title[0].value.startswith("Alignment maps")
    assert len(deck.get("vega_lite_chart")) == 1


def test_download_buttons(deck):
    labels = [button.label for button in deck.download_button]
    assert labels == ["Download PNG", "Download SVG", "Download all 2 as one HTML file"]


def test_next_and_previous(deck):
    deck.button(key="next").click().run()
    assert deck.title[0].value.startswith("Output-aligned positions")
    assert deck.button(key="next").disabled
    deck.button(key="prev").click().run()
    assert deck.title[0].value.startswith("Alignment maps")


def test_edit_caption(deck):
    deck.text_area[0].input("Seen in the talk")
    deck.button(key="present_save").click().run()
    assert not deck.exception
    assert "Seen in the talk" in deck.markdown[-1].value


def test_remove_figure(deck):
    deck.button(key="present_remove").click().run()
    assert not deck.exception
    assert deck.title[0].value.startswith("Output-aligned positions")
    assert deck.download_button[-1].label == "Download all 1 as one HTML file"


def test_view_stays_in_query(deck):
    assert deck.query_params["metric"] == "logprob"
    assert deck.query_params["prompt"] == SHORT_TEXT
