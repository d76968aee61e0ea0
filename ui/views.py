"""Widgets, messages and cached charts shared by the Explore, Attenuate and Present pages.

Widgets here keep their value across page switches. Each one is seeded from
``ui.state.recall`` before it is drawn, and its value is stored back with
``ui.state.remember`` afterwards. So the same text and metric follow the user
from page to page and into the URL query.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from rshift import charts
from rshift.analysis import Analysis, FinalPrediction, LiveAnalysis, top_predictions
from rshift.models import LoadedModel
from rshift.tokens import EmptyTextError
from ui.cache import live_analysis, model_key
from ui.sidebar import current_model
from ui.state import QUERY_KEYS, ModelSettings, publish_query, recall, remember

logger = logging.getLogger(__name__)

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "prompts"

FAMILY_LABELS = {
    "logprob": "log probability",
    "prob": "probability",
    "rank": "rank (log scale)",
    "cosine": "cosine",
    "projection": "projection",
    "projection_normed": "projection after final norm",
}
FAMILY_HELP = (
    "log probability, probability and rank read the logit lens (final norm and "
    "unembedding applied to each layer); cosine and projection compare the residual "
    "stream with the token's embedding row directly."
)


def require_shell() -> None:
    """Send a page that Streamlit ran on its own, without app.py, through app.py.

    When the first request after a server start is for a page's URL, Streamlit
    runs that file of ``pages/`` directly, so the sidebar and the navigation never
    ran. Going through the entry script once fixes it for the whole server process.
    """
    if "model_settings" not in st.session_state:
        st.switch_page("app.py")


def require_model() -> tuple[ModelSettings, LoadedModel]:
    """Return the sidebar's settings and model, or stop the page with a hint."""
    require_shell()
    settings, lm = current_model()
    if lm is None:
        st.info("This page needs a model. Pick one in the sidebar that loads.")
        st.stop()
    return settings, lm


def seed(widget_key: str, name: str, default, valid: Callable[[object], bool] | None = None):
    """Put the remembered value of ``name`` into a widget's state before it is drawn.

    A value that ``valid`` rejects (a layer beyond a smaller model's depth, a
    stale option) is replaced by ``default``.
    """
    current = st.session_state.get(widget_key)
    if widget_key in st.session_state and (valid is None or valid(current)):
        return
    value = recall(name, default)
    st.session_state[widget_key] = value if valid is None or valid(value) else default


# ---------------------------------------------------------------- the text


@st.cache_data(show_spinner=False)
def sample_prompts() -> dict[str, str]:
    """Return the bundled sample texts by display name, in file order."""
    samples = {}
    for path in sorted(SAMPLES_DIR.glob("*.txt")):
        name = path.stem.lstrip("0123456789_").replace("_", " ").capitalize()
        samples[name] = path.read_text(encoding="utf-8").strip()
    return samples


def prompt_box(page: str) -> str:
    """Draw the sample picker and the text box, and return the text.

    The text is shared by every page and published in the URL query.
    """
    samples = sample_prompts()
    text_key, sample_key = f"{page}_text", f"{page}_sample"
    seed(text_key, "prompt", next(iter(samples.values()), ""))
    if sample_key not in st.session_state:
        st.session_state[sample_key] = _sample_named(samples, st.session_state[text_key])

    def use_sample() -> None:
        choice = st.session_state[sample_key]
        if choice in samples:
            st.session_state[text_key] = samples[choice]

    def mark_edited() -> None:
        st.session_state[sample_key] = _sample_named(samples, st.session_state[text_key])

    left, right = st.columns([1, 3])
    left.selectbox(
        "Sample text",
        list(samples),
        index=None,
        key=sample_key,
        on_change=use_sample,
        placeholder="Your own text",
        help="Replace the text with one of the bundled samples",
    )
    text = right.text_area(
        "Text",
        key=text_key,
        height=130,
        on_change=mark_edited,
        help="Any text, tokenized with the model's own tokenizer. Press Ctrl+Enter to apply.",
    )
    remember("prompt", text)
    return text


def _sample_named(samples: dict[str, str], text: str) -> str | None:
    return next((name for name, sample in samples.items() if sample == text.strip()), None)


def metric_picker(page: str, label: str = "Metric") -> str:
    """Draw the metric family picker and return the family (``logprob``, ``rank``, ...)."""
    key = f"{page}_metric"
    seed(key, "metric", "logprob", valid=lambda value: value in FAMILY_LABELS)
    family = st.selectbox(
        label, list(FAMILY_LABELS), format_func=FAMILY_LABELS.get, key=key, help=FAMILY_HELP
    )
    remember("metric", family)
    return family


def publish_view(**values) -> None:
    """Put the remembered view, updated with ``values``, into the URL query."""
    view = {key: recall(key) for key in QUERY_KEYS}
    view.update(values)
    publish_query(**view)


# ---------------------------------------------------------------- analysis and messages


def analyse(lm: LoadedModel, settings: ModelSettings, text: str) -> LiveAnalysis | None:
    """Return the cached baseline analysis of ``text``, or None after an error message."""
    try:
        return live_analysis(lm, model_key(lm), text, settings.max_tokens)
    except EmptyTextError:
        st.error("The text is empty. Type some text above or pick a sample text.")
    except ValueError as error:
        st.error(f"Could not analyse this text: {error}")
    except RuntimeError as error:
        logger.warning("Analysis of %d characters with %s failed: %s", len(text), lm.name, error)
        st.error(
            f"The model failed on this text: {error}. Try a lower token cap in the sidebar "
            "or another device."
        )
    return None


def show_notices(analysis: Analysis) -> None:
    """Show the analysis's notices, such as truncation to the token cap."""
    for warning in analysis.warnings:
        st.warning(warning, icon="✂️")


def format_perplexity(value: float | None) -> str:
    """Return perplexity as text: a number, 'undefined' or 'diverged', never NaN."""
    if value is None:
        return "undefined"
    if not math.isfinite(value):
        return "diverged"
    return f"{value:,.2f}" if value < 1e6 else f"{value:.3g}"


def snippet(text: str, length: int = 70) -> str:
    """Return the start of ``text`` on one line, for figure captions."""
    line = " ".join(text.split())
    return line if len(line) <= length else line[: length - 1] + "…"


def show_chart(chart: alt.TopLevelMixin, **options) -> None:
    """Draw an Altair chart at its own size, with room for its axes and title.

    Streamlit fits a single view into its ``height``, so long rotated token
    labels would squeeze the plot. Inside a concatenation the size is the plot's.
    """
    if not isinstance(chart, alt.VConcatChart | alt.HConcatChart | alt.ConcatChart):
        chart = alt.vconcat(chart)
    st.altair_chart(chart, width="content", **options)


# ---------------------------------------------------------------- cached charts
#
# Streamlit leaves arguments with a leading underscore out of the cache key, so
# ``key`` stands for the analysis: model key, text, token cap and attenuation.


@st.cache_resource(show_spinner=False, max_entries=32)
def alignment_chart(
    _analysis: Analysis,
    _tokenizer,
    key: tuple,
    family: str,
    exclude: tuple[int, ...],
    show_shift: bool,
    percentiles: tuple[float, float],
) -> alt.VConcatChart:
    """Return input alignment, output alignment and their difference for one analysis."""
    return charts.alignment_heatmaps(
        _analysis,
        family,
        tokenizer=_tokenizer,
        exclude=list(exclude),
        show_shift=show_shift,
        percentiles=percentiles,
    )


@st.cache_resource(show_spinner=False, max_entries=32)
def change_chart(
    _base: Analysis, _other: Analysis, _tokenizer, key: tuple, metric: str, exclude: tuple
) -> alt.Chart:
    """Return ``metric`` under the attenuation minus the baseline."""
    return charts.difference_heatmap(
        _base, _other, metric, tokenizer=_tokenizer, exclude=list(exclude)
    )


# ---------------------------------------------------------------- tables


def position_table(analysis: Analysis, tokenizer) -> pd.DataFrame:
    """Return one row per position: token, next token, shift layer, final top-1, loss."""
    labels = list(analysis.text.labels)
    top = top_predictions(analysis, tokenizer)
    loss = [*analysis.nll.tolist(), None]
    sinks = set(analysis.sinks)
    return pd.DataFrame(
        {
            "token": labels,
            "next token": [*labels[1:], ""],
            "shift layer": [None if np.isnan(v) else int(v) for v in analysis.shift],
            "model's top prediction": [f"{row[0][0]} ({row[0][1]:.2f})" for row in top],
            "loss (nats)": loss,
            "sink": [t in sinks for t in range(len(labels))],
        }
    )


def top_table(prediction: FinalPrediction, position: int, tokenizer) -> pd.DataFrame:
    """Return the top predictions at ``position`` as token and probability."""
    ids = prediction.top_ids[position]
    labels = charts.top_label_map(tokenizer, ids)
    return pd.DataFrame(
        {
            "token": [labels[int(i)] for i in ids],
            "probability": prediction.top_probs[position].astype(float),
        }
    )


PROBABILITY_COLUMN = st.column_config.ProgressColumn(
    "probability", format="%.3f", min_value=0.0, max_value=1.0
)
