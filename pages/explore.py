"""Explore: where each position's residual stream turns from the current token to the next."""

import math

import streamlit as st

from rshift import charts
from ui import views
from ui.cache import model_key
from ui.figures import present_button
from ui.state import remember

CLIP_CHOICES = (0.0, 0.5, 1.0, 2.0, 5.0)

settings, lm = views.require_model()
num_blocks = lm.adapter.num_layers

st.title("Explore")
st.caption(
    "Every layer's residual stream is decoded with the logit lens and compared with the "
    "current token (input alignment) and with the next token (output alignment). "
    "The shift layer is where a position turns to the next token for good."
)

text = views.prompt_box("explore")

metric_column, clip_column, switch_column = st.columns([2, 2, 3])
with metric_column:
    family = views.metric_picker("explore")
with clip_column:
    views.seed("explore_clip", "clip", 1.0, valid=lambda value: value in CLIP_CHOICES)
    clip = st.select_slider(
        "Clip colours at percentile",
        CLIP_CHOICES,
        key="explore_clip",
        format_func=lambda p: "no clipping" if p == 0 else f"{p:g}–{100 - p:g}",
        help="The colour range of the input and output maps is shared and spans these "
        "percentiles of their values, so a few extreme cells do not wash out the rest.",
    )
with switch_column:
    views.seed("explore_skip_first", "skip_first", True)
    views.seed("explore_skip_sinks", "skip_sinks", False)
    views.seed("explore_show_shift", "show_shift", True)
    skip_first = st.toggle(
        "Leave out the first token",
        key="explore_skip_first",
        help="The first token has no context. It is left out of colour ranges, the "
        "aligned fraction and the median shift layer, and still drawn.",
    )
    skip_sinks = st.toggle(
        "Leave out sink positions",
        key="explore_skip_sinks",
        help="Attention sinks are positions whose residual norm is far above the rest, "
        "so they dominate colour ranges.",
    )
    show_shift = st.toggle(
        "Mark the shift layer", key="explore_show_shift", help="A diamond per position"
    )
remember("clip", clip)
remember("skip_first", skip_first)
remember("skip_sinks", skip_sinks)
remember("show_shift", show_shift)
views.publish_view(model=settings.model, metric=family)

live = views.analyse(lm, settings, text)
if live is None:
    st.stop()
analysis = live.baseline
views.show_notices(analysis)
exclude = analysis.excluded(skip_first, skip_sinks)

# ---------------------------------------------------------------- headline numbers

median = analysis.median_shift(exclude)
fraction = analysis.aligned_fraction(exclude)
columns = st.columns(4)
columns[0].metric("Tokens", len(analysis.text), help="Positions, as the model tokenizes the text")
columns[1].metric(
    "Median shift layer",
    "none" if median is None else f"{median:g} of {num_blocks}",
    help="Median over positions of the layer from which the lens prefers the next token "
    "at every deeper layer. Layer 0 is the embeddings.",
)
columns[2].metric(
    "Perplexity",
    views.format_perplexity(analysis.perplexity),
    help="exp of the mean loss of the model's own predictions over the text",
)
columns[3].metric(
    "Output-aligned at the last layer",
    "n/a" if math.isnan(fraction[-1]) else f"{fraction[-1]:.0%}",
    help="Fraction of positions whose final prediction prefers the next token over the current one",
)
if analysis.perplexity_note:
    st.info(f"Perplexity is {analysis.perplexity_note}.")
sinks = ", ".join(f"{t} ({analysis.text.labels[t]})" for t in analysis.sinks)
st.caption(f"Sink positions: {sinks}.")

# ---------------------------------------------------------------- the maps

st.subheader(f"Alignment maps: {views.FAMILY_LABELS[family]}")
key = (model_key(lm), text, settings.max_tokens, None)
percentiles = (clip, 100.0 - clip)
try:
    maps = views.alignment_chart(
        analysis, lm.tokenizer, key, family, tuple(exclude), show_shift, percentiles
    )
except (ValueError, KeyError) as error:
    st.error(f"Could not draw the maps: {error}")
else:
    views.show_chart(maps)
    st.caption(
        "Columns are positions, rows are layers (0 = embeddings, at the bottom). Hover over a "
        "cell for its values and the lens's top-5 tokens."
        + (" Diamonds mark each position's shift layer." if show_shift else "")
    )
    present_button(
        "explore_maps",
        f"Alignment maps ({views.FAMILY_LABELS[family]}), {lm.name}",
        f"Input alignment, output alignment and their difference for “{views.snippet(text)}”.",
        maps,
    )

st.subheader("How many positions are output-aligned")
curve = charts.aligned_fraction_chart(analysis, exclude)
st.altair_chart(curve, width="stretch")
present_button(
    "explore_fraction",
    f"Output-aligned positions per layer, {lm.name}",
    f"Fraction of positions whose lens prefers the next token, for “{views.snippet(text)}”.",
    curve,
)

with st.expander("Numbers per position"):
    st.dataframe(
        views.position_table(analysis, lm.tokenizer),
        width="stretch",
        column_config={"loss (nats)": st.column_config.NumberColumn(format="%.3f")},
    )
