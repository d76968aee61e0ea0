"""Gates page: train learnable residual gates with the model frozen, save and load them."""

from __future__ import annotations

import logging

import streamlit as st

from rshift.charts import gate_chart, loss_curve_chart
from rshift.gating import (
    GateSettings,
    GateTrainingResult,
    NotEnoughTextError,
    gates_to_bytes,
    load_gates,
    train_gates,
)
from rshift.models import ModelLoadError
from rshift.prompts import MAX_UPLOAD_BYTES
from ui import gates_view, views
from ui.cache import model_key
from ui.figures import present_button
from ui.messages import sentence
from ui.state import remember

logger = logging.getLogger(__name__)
RESULT_KEY = "gates_run"
KINDS = tuple(gates_view.KIND_LABELS)
GATE_FILE_MB = 50

settings, lm = views.require_model()
num_layers = lm.adapter.num_layers
max_window = max(4, min(1024, lm.max_context - 1))

st.title("Gates")
st.caption(
    "A gate g scales the stream a block carries over, like a fixed attenuation "
    "(g = 1 leaves the model unchanged). Here the gates are trained on your text with "
    "every model weight frozen, and the validation perplexity shows whether they help."
)


def seeded(key: str, default, valid=None) -> str:
    """Seed widget ``key`` from the value remembered under the same name and return the key."""
    views.seed(key, key, default, valid)
    return key


def choose_text() -> str | None:
    """Draw the text box and the upload and return the training text, or None after an error."""
    st.subheader("Training text")
    uploaded = st.file_uploader(
        "Upload a text file instead (optional)",
        type=["txt", "md"],
        key="gates_upload",
        max_upload_size=max(1, MAX_UPLOAD_BYTES // 2**20),
        help="Plain text: UTF-8, or UTF-16 / UTF-32 with a byte-order mark",
    )
    typed = st.text_area(
        "Text",
        key=seeded("gates_text", gates_view.default_training_text()),
        height=200,
        help="The first part trains the gates, the last part measures validation perplexity.",
        disabled=uploaded is not None,
    )
    remember("gates_text", typed)
    if uploaded is None:
        return typed
    text, error = gates_view.read_text_upload(uploaded.getvalue(), uploaded.name)
    if error:
        st.error(error)
        return None
    st.caption(
        f"Training on '{uploaded.name}' ({len(text):,} characters) instead of the text box; "
        "remove the file to use the box again."
    )
    return text


def choose_settings() -> GateSettings | None:
    """Draw the training settings and return them, or None after an error."""
    st.subheader("Settings")
    kind_col, steps_col, rate_col, window_col, first_col = st.columns(5)
    kind = kind_col.selectbox(
        "Kind",
        KINDS,
        key=seeded("gates_kind", "scalar", KINDS.__contains__),
        format_func=lambda kind: gates_view.KIND_LABELS[kind].split(":")[0],
        help="; ".join(gates_view.KIND_LABELS.values()),
    )
    steps = steps_col.number_input(
        "Steps",
        1,
        2000,
        key=seeded("gates_steps", 30, lambda v: isinstance(v, int) and 1 <= v <= 2000),
        help="Optimiser steps, one training window each",
    )
    rate = rate_col.number_input(
        "Learning rate",
        0.001,
        10.0,
        format="%.3f",
        step=0.01,
        key=seeded("gates_rate", 0.05, lambda v: 0.001 <= v <= 10.0),
        help="Adam's learning rate for the gate parameters",
    )
    window = window_col.number_input(
        "Window (tokens)",
        4,
        max_window,
        key=seeded("gates_window", min(64, max_window), lambda v: 4 <= v <= max_window),
        help="Tokens per training and validation window",
    )
    first = first_col.number_input(
        "First gated block",
        1,
        num_layers,
        key=seeded("gates_first", 1, lambda v: v in range(1, num_layers + 1)),
        help=f"Blocks from this one to {num_layers} get a gate. Earlier blocks stay unmodified.",
    )
    with st.expander("More settings"):
        left, right = st.columns(2)
        fraction = left.slider(
            "Validation share of the text",
            0.05,
            0.5,
            step=0.05,
            key=seeded("gates_fraction", 0.2, lambda v: 0.05 <= v <= 0.5),
        )
        seed = right.number_input("Seed", 0, 2**31 - 1, key=seeded("gates_seed", 0))
    for name, value in (
        ("gates_kind", kind),
        ("gates_steps", steps),
        ("gates_rate", rate),
        ("gates_window", window),
        ("gates_first", first),
        ("gates_fraction", fraction),
        ("gates_seed", seed),
    ):
        remember(name, value)
    try:
        return GateSettings(
            kind=kind,
            steps=int(steps),
            learning_rate=float(rate),
            window=int(window),
            validation_fraction=float(fraction),
            first_block=int(first),
            seed=int(seed),
        )
    except ValueError as error:
        st.error(f"{sentence(error)} Change the settings above.")
        return None


def train(text: str, gate_settings: GateSettings) -> GateTrainingResult | None:
    """Train with a live loss curve and a progress bar, or return None after an error."""
    curve = st.empty()
    bar = st.progress(0.0, text="Measuring validation perplexity before training...")
    steps: list[int] = []
    losses: list[float] = []
    every = max(1, gate_settings.steps // 60)

    def on_step(step: int, loss: float) -> None:
        steps.append(step)
        losses.append(loss)
        if step % every == 0 or step == gate_settings.steps:
            curve.altair_chart(loss_curve_chart(steps, losses), width="stretch")

    def report(fraction: float, message: str) -> None:
        done = fraction >= 1.0
        label = "Measuring validation perplexity after training..." if done else message
        bar.progress(min(max(fraction, 0.0), 1.0), text=label)

    try:
        return train_gates(lm, text, gate_settings, progress=report, on_step=on_step)
    except NotEnoughTextError as error:
        st.error(str(error))
    except (ValueError, RuntimeError, ModelLoadError) as error:
        logger.warning("Gate training on %s failed: %s", lm.name, error)
        st.error(
            f"Training failed: {sentence(error)} Try fewer steps, a smaller window or other text."
        )
    finally:
        bar.empty()
        curve.empty()
    return None


def show_training(result: GateTrainingResult, gate_bytes: bytes) -> None:
    """Draw the before/after numbers, the loss curve, the gates and the download."""
    before, after = result.validation_before, result.validation_after
    columns = st.columns(4)
    columns[0].metric(
        "Validation perplexity before",
        views.format_perplexity(before),
        help="The unmodified model (every gate at 1) on the validation windows",
    )
    finite = None not in (gates_view.loss(before), gates_view.loss(after))
    change = after - before if finite else None
    columns[1].metric(
        "Validation perplexity after",
        views.format_perplexity(after),
        delta=None if change is None else f"{change:+.3f} ({change / before:+.1%})",
        delta_color="inverse",
        help="With the trained gates; lower is better",
    )
    columns[2].metric("Training tokens", f"{result.train_tokens:,}")
    columns[3].metric("Validation tokens", f"{result.validation_tokens:,}")
    if gates_view.loss(after) is None:
        st.warning(
            "The validation loss diverged with these gates. Lower the learning rate or train "
            "fewer steps."
        )

    left, right = st.columns(2)
    total = result.settings.steps
    val_losses = [gates_view.loss(before), gates_view.loss(after)]
    val = ([0, total], val_losses) if None not in val_losses else None
    curve = loss_curve_chart(range(1, total + 1), result.train_losses, val)
    with left:
        st.altair_chart(curve, width="stretch")
        st.caption(
            "Training loss per step (one window each); validation loss before and after "
            "training as the two points."
        )
        present_button(
            "gates_loss",
            "Gate training loss",
            f"{result.settings.kind} gates on {result.model_name}, {total} steps",
            curve,
        )
    with right:
        values = gates_view.gate_values(result.gate_per_block, result.gates.num_layers)
        chart = gate_chart(values)
        st.altair_chart(chart, width="stretch")
        note = " averaged over the validation positions" if result.settings.kind == "token" else ""
        spread = gates_view.gate_range(result.gate_per_block)
        st.caption(
            f"The learned gate of each block{note}: {spread}. The dashed line is 1 (unmodified)."
            + gates_view.ungated_note(result.gates.first_block)
        )
        present_button(
            "gates_values",
            "Learned residual gates",
            f"{result.settings.kind} gates on {result.model_name}: validation perplexity "
            f"{views.format_perplexity(before)} → {views.format_perplexity(after)}",
            chart,
        )
    st.download_button(
        "Download gates (.safetensors)",
        gate_bytes,
        file_name=f"rshift-gates-{result.settings.kind}.safetensors",
        mime="application/octet-stream",
        icon=":material/download:",
        help="The gates with the model name, settings and a hash of the text as metadata",
    )


def show_loaded_gates() -> None:
    """Draw the gate-file upload and show a loaded file's metadata and gates."""
    st.subheader("Load gates")
    uploaded = st.file_uploader(
        "A gate file saved by this page or by `rshift`",
        type=["safetensors"],
        key="gates_load",
        max_upload_size=GATE_FILE_MB,
    )
    if uploaded is None:
        return

    try:
        gates, metadata = load_gates(uploaded.getvalue(), lm)
    except ValueError as error:
        st.error(
            f"Could not use '{uploaded.name}': {sentence(error)} Load a gate file trained for "
            f"{lm.name}, or train new gates above."
        )
        return
    problems = gates_view.fit_problems(gates, metadata, lm)
    if problems:
        st.error(" ".join(problems) + " Load a gate file trained for this model.")
        return

    trained_on = metadata.get("model")
    if trained_on and trained_on != lm.name:
        st.warning(
            f"These gates were trained on {trained_on}; the loaded model is {lm.name}. "
            "They fit its shape, but their values may mean little here."
        )

    left, right = st.columns([2, 3])
    left.dataframe(gates_view.metadata_rows(metadata), hide_index=True, width="stretch")
    with right:
        per_block = gates.values()
        chart = gate_chart(gates_view.gate_values(per_block, gates.num_layers))
        st.altair_chart(chart, width="stretch")
        caption = f"Gates: {gates_view.gate_range(per_block)}."
        if gates.kind == "token":
            caption += " Token gates show the gate at a zero-mean input."
        st.caption(caption + gates_view.ungated_note(gates.first_block))
        present_button(
            "gates_loaded",
            f"Gates from {uploaded.name}",
            f"{gates.kind} gates trained on {trained_on}",
            chart,
        )


text = choose_text()
gate_settings = choose_settings()
ready = bool(text and text.strip()) and gate_settings is not None
if ready:
    have = gates_view.token_count(lm, text)
    need = gate_settings.min_tokens()
    enough = "" if have >= need else " Add text or lower the window before training."
    st.caption(
        f"The text has {have:,} tokens; with a {gate_settings.window}-token window and a "
        f"{gate_settings.validation_fraction:.0%} validation share these settings need at least "
        f"{need:,} tokens.{enough}"
    )
elif text is not None and not text.strip():
    st.warning("The text is empty. Type or paste some text, or upload a file.")

key = gates_view.training_key(model_key(lm), text, gate_settings) if ready else None
stored = st.session_state.get(RESULT_KEY)
if st.button("Train gates", type="primary", disabled=not ready, key="gates_train"):
    result = train(text, gate_settings)
    if result is not None:
        stored = {"key": key, "result": result, "bytes": gates_to_bytes(result)}
        st.session_state[RESULT_KEY] = stored

if stored is not None:
    st.subheader("Result")
    if stored["key"] != key:
        st.info("The text or settings changed since this training run; train again to update.")
    show_training(stored["result"], stored["bytes"])

st.divider()
show_loaded_gates()
