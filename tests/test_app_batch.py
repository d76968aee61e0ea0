"""The Batch page, driven through the whole app with Streamlit's AppTest on a tiny model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from rshift.attenuation import Attenuation
from rshift.batch import BatchResult
from ui import batch_view

APP = Path(__file__).resolve().parent.parent / "app.py"
TIMEOUT = 120


def open_batch(token_cap: int | None = None) -> AppTest:
    """Start the app, optionally set the sidebar's token cap, and switch to the Batch page."""
    app = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    if token_cap is not None:
        # The sidebar starts its token cap from the remembered value.
        app.session_state["keep_max_tokens"] = token_cap
    app.run()
    app.switch_page("pages/batch.py").run()
    assert not app.exception
    return app


@pytest.fixture
def tiny_app_model(tiny_folders, monkeypatch) -> None:
    """Make the sidebar load the tiny Llama-like model."""
    monkeypatch.setenv("RSHIFT_MODEL", str(tiny_folders["llama_tied"]))


@pytest.fixture
def batch_app(tiny_app_model) -> AppTest:
    """The app on the Batch page, with the tiny model loaded by the sidebar."""
    return open_batch()


def messages(elements) -> str:
    return " ".join(str(element.value) for element in elements)


def test_batch_sample_prompts_table(batch_app):
    sample_count = len(batch_view.sample_prompts().prompts)
    button = batch_app.button(key="batch_run_button")
    assert button.label == f"Analyse {sample_count} prompts"

    button.click().run()

    assert not batch_app.exception
    assert not batch_app.error
    table = batch_app.dataframe(key="batch_table").value
    assert len(table) == sample_count
    assert list(table["#"]) == list(range(1, sample_count + 1))
    assert "attenuated perplexity" not in table.columns
    assert (table["perplexity"] > 0).all()
    assert batch_app.metric[0].value == str(sample_count)
    assert len(batch_app.get("vega_lite_chart")) == 2
    labels = [button.label for button in batch_app.get("download_button")]
    assert "Per-prompt table (CSV)" in labels
    assert "Everything (JSON)" in labels


def test_batch_result_cached_across_reruns(batch_app):
    batch_app.button(key="batch_run_button").click().run()
    first = batch_app.session_state["batch_run"]["result"]

    batch_app.run()

    assert batch_app.session_state["batch_run"]["result"] is first
    assert len(batch_app.dataframe(key="batch_table").value) == len(first.rows)
    assert not batch_app.info


def test_batch_remembered_attenuation_column(batch_app):
    # As if the user had set it on the Attenuate page and come back.
    batch_app.switch_page("pages/explore.py").run()
    batch_app.session_state["keep_layer"] = 3
    batch_app.session_state["keep_alpha"] = 0.5
    batch_app.switch_page("pages/batch.py").run()
    assert batch_app.checkbox(key="batch_use_attenuation").value

    batch_app.button(key="batch_run_button").click().run()

    assert not batch_app.exception
    table = batch_app.dataframe(key="batch_table").value
    assert "attenuated perplexity" in table.columns
    assert "alpha 0.5 at block 3 only" in messages(batch_app.caption)


def test_batch_token_cap_notice(tiny_app_model):
    batch_app = open_batch(token_cap=8)
    batch_app.button(key="batch_run_button").click().run()

    assert not batch_app.exception
    assert "longer than the token cap of 8" in messages(batch_app.warning)
    assert "truncated" in " ".join(batch_app.dataframe(key="batch_table").value["notes"])


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("binary.txt", b"\x00\x01\x02 not text", "binary"),
        ("empty.csv", b"", "empty"),
        ("columns.csv", b"id,title\n1,hello\n", "no 'prompt' or 'text' column"),
        ("broken.jsonl", b'{"prompt": "fine"}\n{"prompt": \n', "line 2"),
    ],
)
def test_batch_bad_upload_message(batch_app, name, content, expected):
    batch_app.radio(key="batch_source").set_value("Upload a file").run()
    batch_app.file_uploader(key="batch_upload").upload(name, content, "text/plain")
    batch_app.run()

    assert not batch_app.exception
    assert expected in messages(batch_app.error)
    assert batch_app.button(key="batch_run_button").disabled
    assert batch_app.checkbox(key="batch_exclude_first").value


def test_batch_upload_warnings(batch_app):
    batch_app.radio(key="batch_source").set_value("Upload a file").run()
    content = b"id,prompt\n1,The first prompt.\n2,\n3,The second prompt.\n"
    batch_app.file_uploader(key="batch_upload").upload("mine.csv", content, "text/csv")
    batch_app.run()

    assert not batch_app.exception
    assert not batch_app.error
    assert "skipped 1 row" in messages(batch_app.warning)
    assert batch_app.button(key="batch_run_button").label == "Analyse 2 prompts"


def test_batch_selected_prompt_opens_explore(batch_app):
    batch_app.button(key="batch_run_button").click().run()
    batch_app.session_state["batch_table"] = {
        "selection": {"rows": [1], "columns": [], "cells": []}
    }
    batch_app.run()
    opener = next(b for b in batch_app.button if b.label.startswith("Open prompt #2"))

    opener.click().run()

    assert not batch_app.exception
    second = batch_view.sample_prompts().prompts[1]
    assert batch_app.session_state["keep_prompt"] == second
    assert batch_app.title[0].value == "Explore"


def test_batch_without_model_shows_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("RSHIFT_MODEL", str(tmp_path / "missing-model"))
    app = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    app.run()

    app.switch_page("pages/batch.py").run()

    assert not app.exception
    assert "needs a model" in messages(app.info)
    assert not app.button


# ---------------------------------------------------------------- helpers


def fake_result(attenuation: Attenuation | None = None) -> BatchResult:
    rows = [
        {
            "index": 0,
            "prompt": "short",
            "tokens": 3,
            "dropped_tokens": 0,
            "median_shift_layer": 2.0,
            "median_relative_shift": 0.4,
            "perplexity": 12.5,
            "perplexity_attenuated": math.inf,
        },
        {
            "index": 2,
            "prompt": "long",
            "tokens": 8,
            "dropped_tokens": 5,
            "median_shift_layer": None,
            "median_relative_shift": None,
            "perplexity": math.inf,
            "perplexity_attenuated": 40.0,
        },
    ]
    return BatchResult(rows, None, [(1, "The text is empty.")], 5, attenuation)


def test_summary_frame_non_finite_cells():
    frame = batch_view.summary_frame(fake_result(Attenuation(layer=2, alpha=0.0)))

    assert list(frame["#"]) == [1, 3]
    assert frame["perplexity"].isna().tolist() == [False, True]
    assert frame["attenuated perplexity"].isna().tolist() == [True, False]
    assert "diverged under the attenuation" in frame["notes"][0]
    assert "no position shifts" in frame["notes"][1]
    assert "5 tokens dropped" in frame["notes"][1]


def test_json_bytes_strict():
    data = batch_view.json_bytes(fake_result(Attenuation(layer=2, alpha=0.0)))

    def reject(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    parsed = json.loads(data, parse_constant=reject)
    assert parsed["prompts"][1]["perplexity"] is None


def test_notices_name_prompts():
    result = fake_result()

    assert "#3 (5 dropped)" in batch_view.truncation_notice(result, 8)
    assert "#2: The text is empty." in batch_view.skipped_notice(result)


def test_read_upload_error_messages():
    bad = batch_view.read_upload("café".encode("latin-1"), "prompts.txt")
    slides = batch_view.read_upload(b"PK\x03\x04", "slides.pptx")
    good = batch_view.read_upload(b"one\n\ntwo\n", "prompts.txt")

    assert bad.prompts == []
    assert "not valid UTF-8" in bad.error
    assert "unsupported file type" in slides.error
    assert good.error is None
    assert good.prompts == ["one", "two"]


def test_example_files_same_prompts():
    expected = batch_view.sample_prompts().prompts
    for name in batch_view.FORMAT_SAMPLES:
        parsed = batch_view.read_upload(batch_view.format_sample(name), name)
        assert parsed.error is None, parsed.error
        assert parsed.prompts == expected, name


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ({}, None),
        ({"layer": 3, "alpha": 1.0}, None),
        ({"layer": 9, "alpha": 0.5}, None),
        ({"layer": 2, "alpha": 0.5, "scope": "bogus"}, None),
        ({"layer": 2, "alpha": 0.25, "scope": "from"}, Attenuation(2, 0.25, "from")),
    ],
)
def test_remembered_attenuation_fits_model(stored, expected):
    def recall(key, default=None):
        return stored.get(key, default)

    assert batch_view.remembered_attenuation(5, recall) == expected
