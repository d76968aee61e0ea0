"""The Gates page, driven through the whole app with Streamlit's AppTest on a tiny model."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from rshift.gating import GateSettings, gates_to_bytes, train_gates
from ui import gates_view

APP = Path(__file__).resolve().parent.parent / "app.py"
TIMEOUT = 120
FEW_STEPS = 3


@pytest.fixture
def gates_app(tiny_folders, monkeypatch) -> AppTest:
    """The app on the Gates page, with the tiny Llama-like model loaded by the sidebar."""
    monkeypatch.setenv("RSHIFT_MODEL", str(tiny_folders["llama_tied"]))
    app = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    app.run()
    app.switch_page("pages/gates.py").run()
    assert not app.exception
    return app


def messages(elements) -> str:
    return " ".join(str(element.value) for element in elements)


def train(app: AppTest, steps: int = FEW_STEPS) -> AppTest:
    app.number_input(key="gates_steps").set_value(steps)
    return app.button(key="gates_train").click().run()


def test_gates_defaults_prefilled(gates_app):
    text = gates_app.text_area(key="gates_text").value

    assert text == gates_view.default_training_text()
    assert gates_app.number_input(key="gates_steps").value == 30
    assert gates_app.number_input(key="gates_window").value == 64
    assert "Add text or lower the window" not in messages(gates_app.caption)
    assert not gates_app.button(key="gates_train").disabled


def test_gates_training_metrics(gates_app):
    train(gates_app)

    assert not gates_app.exception
    assert not gates_app.error
    metrics = {metric.label: metric for metric in gates_app.metric}
    before = metrics["Validation perplexity before"]
    after = metrics["Validation perplexity after"]
    assert float(before.value.replace(",", "")) > 0
    assert float(after.value.replace(",", "")) > 0
    assert after.delta.endswith("%)")
    assert len(gates_app.get("vega_lite_chart")) == 2
    labels = [button.label for button in gates_app.get("download_button")]
    assert labels == ["Download gates (.safetensors)"]
    stored = gates_app.session_state["gates_run"]
    assert len(stored["result"].train_losses) == FEW_STEPS


def test_gates_short_text_message(gates_app):
    gates_app.text_area(key="gates_text").set_value("Far too short to train on.")
    gates_app.run()
    assert "Add text or lower the window" in messages(gates_app.caption)

    train(gates_app)

    assert not gates_app.exception
    assert "Gate training needs at least" in messages(gates_app.error)
    assert not gates_app.metric


def test_gates_empty_text_disabled(gates_app):
    gates_app.text_area(key="gates_text").set_value("   ").run()

    assert not gates_app.exception
    assert "The text is empty" in messages(gates_app.warning)
    assert gates_app.button(key="gates_train").disabled


def test_gates_binary_upload_message(gates_app):
    gates_app.file_uploader(key="gates_upload").upload("notes.txt", b"\x00\xffbinary", "text/plain")
    gates_app.run()

    assert not gates_app.exception
    assert "binary" in messages(gates_app.error)
    assert gates_app.button(key="gates_train").disabled


def test_gates_saved_file_loads(gates_app):
    train(gates_app)
    data = gates_app.session_state["gates_run"]["bytes"]

    gates_app.file_uploader(key="gates_load").upload("mine.safetensors", data)
    gates_app.run()

    assert not gates_app.exception
    assert not gates_app.error
    table = gates_app.dataframe[0].value
    settings = dict(zip(table["setting"], table["value"], strict=True))
    assert settings["kind"] == "scalar"
    assert settings["steps"] == str(FEW_STEPS)
    assert len(gates_app.get("vega_lite_chart")) == 3


def test_gates_other_model_error(gates_app, tiny_models):
    other = tiny_models["gpt2"]
    result = train_gates(
        other, gates_view.default_training_text(), GateSettings(steps=1, window=16)
    )

    gates_app.file_uploader(key="gates_load").upload("gpt2.safetensors", gates_to_bytes(result))
    gates_app.run()

    assert not gates_app.exception
    error = messages(gates_app.error)
    assert "trained for a model with 4 blocks" in error
    assert "the loaded model has 5" in error


def test_gates_invalid_file_message(gates_app):
    gates_app.file_uploader(key="gates_load").upload("junk.safetensors", b"not safetensors")
    gates_app.run()

    assert not gates_app.exception
    error = messages(gates_app.error)
    assert "Could not use 'junk.safetensors'" in error
    assert ". Load a gate file trained for" in error


def test_gates_without_model_shows_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("RSHIFT_MODEL", str(tmp_path / "missing-model"))
    app = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    app.run()

    app.switch_page("pages/gates.py").run()

    assert not app.exception
    assert "needs a model" in messages(app.info)
    assert not app.button


# ---------------------------------------------------------------- helpers


def test_gate_values_ungated_blocks():
    assert gates_view.gate_values({3: 0.5, 4: 1.5}, 4) == [1.0, 1.0, 0.5, 1.5]


def test_read_text_upload_errors():
    assert gates_view.read_text_upload(b"", "a.txt") == (
        None,
        "'a.txt' is empty (0 bytes). Upload a file with some text.",
    )
    assert "whitespace" in gates_view.read_text_upload(b" \n ", "a.txt")[1]
    text, error = gates_view.read_text_upload("héllo\r\nworld".encode("utf-16"), "a.txt")
    assert (text, error) == ("héllo\nworld", None)


def test_gate_range_names_blocks():
    assert gates_view.gate_range({2: 1.05, 3: 0.9, 4: 1.2}) == (
        "lowest 0.900 (block 3), highest 1.200 (block 4)"
    )


def test_ungated_note_names_blocks():
    assert gates_view.ungated_note(1) == ""
    assert gates_view.ungated_note(2) == " Block 1 has no gate and shows as 1."
    assert gates_view.ungated_note(3) == " Blocks 1 and 2 have no gate and show as 1."
    assert gates_view.ungated_note(4) == " Blocks 1 to 3 have no gate and show as 1."


def test_loss_from_perplexity():
    assert gates_view.loss(math.e) == pytest.approx(1.0)
    assert gates_view.loss(1.0) == 0.0
    assert gates_view.loss(math.inf) is None


def test_metadata_rows_readable():
    rows = gates_view.metadata_rows(
        {
            "model": "tiny",
            "kind": "token",
            "validation_before": "12.3456789",
            "settings": '{"steps": 5, "window": 16}',
            "text_sha256": "ab" * 32,
        }
    )
    values = {row["setting"]: row["value"] for row in rows}

    assert values["trained on model"] == "tiny"
    assert values["validation perplexity before"] == "12.346"
    assert values["steps"] == "5"
    assert values["training text (SHA-256)"].endswith("…")
