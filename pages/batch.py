"""Batch page: analyse many prompts and aggregate the shift by relative depth."""

from __future__ import annotations

import logging

import streamlit as st

from rshift.attenuation import MODES, SCOPES, Attenuation
from rshift.batch import BatchResult, analyze_prompts
from rshift.charts import corpus_chart, shift_histogram
from rshift.models import ModelLoadError
from rshift.prompts import MAX_UPLOAD_BYTES
from ui import batch_view, views
from ui.cache import model_key
from ui.figures import present_button
from ui.messages import sentence
from ui.state import recall, remember

logger = logging.getLogger(__name__)
RESULT_KEY = "batch_run"
SAMPLES, UPLOAD = "Sample prompts", "Upload a file"

settings, lm = views.require_model()
st.title("Batch")
st.caption(
    "Analyse many prompts at once: where does each one's residual stream turn from the "
    "current token to the next, and how does that look averaged over the corpus?"
)
num_layers = lm.adapter.num_layers


def seed_widget(key: str, default, valid) -> None:
    """Give a widget ``default`` unless it already contains a value that ``valid`` accepts."""
    if key not in st.session_state or not valid(st.session_state[key]):
        st.session_state[key] = default


def choose_prompts() -> batch_view.PromptInput | None:
    """Draw the prompt source widgets and return the prompts, or None before an upload."""
    source = st.radio("Prompts to analyse", (SAMPLES, UPLOAD), horizontal=True, key="batch_source")
    if source == SAMPLES:
        return batch_view.sample_prompts()
    uploaded = st.file_uploader(
        "Prompt file",
        type=["txt", "csv", "jsonl", "json"],
        key="batch_upload",
        max_upload_size=max(1, MAX_UPLOAD_BYTES // 2**20),
        help=".txt: one prompt per line (or paragraphs separated by blank lines); "
        ".csv: a 'prompt' or 'text' column; .jsonl / .json: strings or objects with a "
        "'prompt' key",
    )
    with st.expander("File formats and examples"):
        for name, description in batch_view.FORMAT_SAMPLES.items():
            left, right = st.columns([3, 1])
            left.markdown(f"**{name.rsplit('.', 1)[1]}**: {description}")
            right.download_button(
                name,
                batch_view.format_sample(name),
                file_name=name,
                mime=batch_view.MIME_TYPES.get("." + name.rsplit(".", 1)[1], "text/plain"),
                key=f"batch_example_{name}",
                icon=":material/download:",
            )
    if uploaded is None:
        return None
    return batch_view.read_upload(uploaded.getvalue(), uploaded.name)


def choose_attenuation() -> tuple[Attenuation | None, bool]:
    """Draw the optional attenuation inputs and return the attenuation and whether it is valid."""
    remembered = batch_view.remembered_attenuation(num_layers, recall)
    with st.expander("Compare with an attenuated model", expanded=remembered is not None):
        if remembered is not None:
            st.caption(
                f"Prefilled from the Attenuate page: {batch_view.describe_attenuation(remembered)}."
            )
        use = st.checkbox(
            "Also measure each prompt's perplexity under an attenuation",
            value=remembered is not None,
            key="batch_use_attenuation",
        )
        base = remembered or Attenuation(layer=max(1, round(0.8 * num_layers)), alpha=0.5)
        modes = MODES if lm.adapter.supports_sublayer_modes else ("block",)
        seed_widget("batch_layer", base.layer, lambda v: v in range(1, num_layers + 1))
        seed_widget("batch_alpha", float(base.alpha), lambda v: 0.0 <= v <= 2.0)
        seed_widget("batch_scope", base.scope, SCOPES.__contains__)
        seed_widget("batch_mode", base.mode if base.mode in modes else "block", modes.__contains__)
        layer_col, alpha_col, scope_col, mode_col = st.columns(4)
        layer = layer_col.number_input(
            "Block L", 1, num_layers, key="batch_layer", disabled=not use
        )
        alpha = alpha_col.slider("alpha", 0.0, 2.0, step=0.05, key="batch_alpha", disabled=not use)
        scope = scope_col.selectbox(
            "Scope",
            SCOPES,
            key="batch_scope",
            disabled=not use,
            help="single: block L only. from: every block from L to the last.",
        )
        mode = mode_col.selectbox(
            "Skip path",
            modes,
            key="batch_mode",
            disabled=not use,
            help="block: the whole block's skip path. attention / mlp: one sublayer's skip path.",
        )
    if not use:
        return None, True
    try:
        return Attenuation(int(layer), float(alpha), scope, mode).validate(num_layers), True
    except ValueError as error:
        st.error(f"{sentence(error)} Change the attenuation inputs above.")
        return None, False


def run_batch(prompts: list[str], attenuation: Attenuation | None, exclude_first: bool):
    """Analyse ``prompts`` with a progress bar and return the result, or None after an error."""
    bar = st.progress(0.0, text=f"Analysing {len(prompts)} prompts...")

    def report(fraction: float, message: str) -> None:
        bar.progress(min(max(fraction, 0.0), 1.0), text=f"Analysed {message}")

    try:
        result = analyze_prompts(
            lm,
            prompts,
            max_tokens=settings.max_tokens,
            attenuation=attenuation,
            exclude_first=exclude_first,
            progress=report,
        )
    except (ValueError, RuntimeError, ModelLoadError) as error:
        logger.warning("Batch of %d prompts on %s failed: %s", len(prompts), lm.name, error)
        st.error(
            f"The batch analysis failed: {sentence(error)} "
            "Check the prompts and settings, then try again."
        )
        return None
    finally:
        bar.empty()
    return result


def show_table(result: BatchResult, prompts: list[str]) -> None:
    """Draw the per-prompt table and the 'open in Explore' control."""
    frame = batch_view.summary_frame(result)
    if not frame.empty and not frame["notes"].any():
        frame = frame.drop(columns="notes")
    number = st.column_config.NumberColumn
    selection = st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        # Up to 20 rows show without scrolling.
        height=38 + 35 * min(len(frame), 20),
        on_select="rerun",
        selection_mode="single-row",
        key="batch_table",
        column_config={
            "#": number(width="small"),
            "prompt": st.column_config.TextColumn(width="large"),
            "tokens": number(width="small"),
            "median shift layer": number(format="%.1f", help="Median over positions"),
            "relative depth": number(format="%.2f", help="Median shift layer / number of blocks"),
            "perplexity": number(format="%.2f"),
            "attenuated perplexity": number(format="%.2f"),
            "notes": st.column_config.TextColumn(width="medium"),
        },
    )
    rows = selection.selection.rows if selection is not None else []
    if not rows:
        st.caption("Select a row to open that prompt on the Explore page.")
        return
    row = result.rows[rows[0]]
    text = prompts[int(row["index"])]
    if st.button(f"Open prompt #{int(row['index']) + 1} in Explore", icon="🔍"):
        remember("prompt", text)
        st.switch_page("pages/explore.py")


def show_result(result: BatchResult, prompts: list[str]) -> None:
    """Draw the notices, summary numbers, table, charts and downloads of one batch run."""
    if result.aggregate is None:
        st.warning("None of the prompts could be analysed.")
    for notice in (
        batch_view.truncation_notice(result, settings.max_tokens),
        batch_view.skipped_notice(result),
    ):
        if notice:
            st.warning(notice)
    if result.attenuation is not None:
        st.caption(
            f"Attenuated perplexity uses {batch_view.describe_attenuation(result.attenuation)}."
        )

    aggregate = result.aggregate
    if aggregate is not None:
        median = aggregate.median_relative_shift()
        count, depth, layer = st.columns(3)
        count.metric("Prompts analysed", aggregate.prompts)
        depth.metric("Median shift depth", "none" if median is None else f"{median:.2f}")
        blocks = result.num_layers
        layer.metric(
            "≈ shift layer",
            "none" if median is None else f"{median * blocks:.1f} of {blocks}",
        )

    show_table(result, prompts)

    if aggregate is not None:
        left, right = st.columns(2)
        with left:
            chart = corpus_chart(aggregate)
            st.altair_chart(chart, width="stretch")
            st.caption(
                "Share of positions whose logit lens prefers the next token over the current "
                "one, by relative depth; the band is a 95% bootstrap interval over prompts."
            )
            present_button(
                "batch_corpus",
                "Output alignment over the corpus",
                f"{aggregate.prompts} prompts, {lm.name}",
                chart,
            )
        with right:
            histogram = shift_histogram(aggregate.relative_shift)
            st.altair_chart(histogram, width="stretch")
            st.caption("Shift layer of every position, divided by the number of blocks.")
            present_button(
                "batch_histogram",
                "Where positions shift",
                f"{aggregate.prompts} prompts, {lm.name}",
                histogram,
            )

    downloads = st.container(horizontal=True)
    downloads.download_button(
        "Per-prompt table (CSV)",
        result.summary_csv(),
        file_name="rshift-batch-prompts.csv",
        mime="text/csv",
        icon=":material/download:",
    )
    downloads.download_button(
        "Corpus curve (CSV)",
        result.aggregate_csv(),
        file_name="rshift-batch-aggregate.csv",
        mime="text/csv",
        icon=":material/download:",
    )
    downloads.download_button(
        "Everything (JSON)",
        batch_view.json_bytes(result),
        file_name="rshift-batch.json",
        mime="application/json",
        icon=":material/download:",
    )


chosen = choose_prompts()
if chosen is not None and chosen.error:
    st.error(chosen.error)
elif chosen is not None:
    for warning in chosen.warnings:
        st.warning(f"While reading {chosen.source}: {warning}.")
    with st.expander(f"{len(chosen.prompts)} prompts from {chosen.source}"):
        st.dataframe(
            {"#": range(1, len(chosen.prompts) + 1), "prompt": chosen.prompts},
            hide_index=True,
            width="stretch",
            height=min(400, 38 + 35 * len(chosen.prompts)),
        )

attenuation, attenuation_ok = choose_attenuation()
exclude_first = st.checkbox(
    "Leave the first token out of the aggregate",
    value=True,
    key="batch_exclude_first",
    help="The first token acts as an attention sink and behaves unlike the others.",
)

usable = chosen is not None and not chosen.error and attenuation_ok
key = (
    batch_view.batch_key(
        model_key(lm), chosen.prompts, settings.max_tokens, attenuation, exclude_first
    )
    if usable
    else None
)
stored = st.session_state.get(RESULT_KEY)
label = f"Analyse {len(chosen.prompts)} prompts" if usable else "Analyse"
if st.button(label, type="primary", disabled=not usable, key="batch_run_button"):
    result = run_batch(chosen.prompts, attenuation, exclude_first)
    if result is not None:
        stored = {"key": key, "result": result, "prompts": list(chosen.prompts)}
        st.session_state[RESULT_KEY] = stored

if stored is None:
    if chosen is None:
        st.info("Upload a prompt file, or switch to the sample prompts.")
    st.stop()
if stored["key"] != key:
    st.info("The inputs changed since these results were computed; press Analyse to update them.")
show_result(stored["result"], stored["prompts"])
