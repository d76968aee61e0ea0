"""The Attenuate page's sections: the setting, the headline numbers, predictions, landscape."""

from __future__ import annotations

import math

import streamlit as st

from rshift import charts
from rshift.analysis import FinalPrediction, LiveAnalysis
from rshift.attenuation import Attenuation
from rshift.intervention import Landscape, sweep
from ui import views
from ui.state import remember

SCOPE_LABELS = {"single": "block L only", "from": "blocks L to N"}
MODE_LABELS = {"block": "whole block", "attention": "attention skip", "mlp": "MLP skip"}
ALPHA_STEPS = (0.05, 0.1, 0.2, 0.25)
KEPT_LANDSCAPES = 4


def setting_controls(num_blocks: int, sublayers: bool) -> Attenuation:
    """Draw block, strength, scope and skip path, and return the attenuation they set.

    Args:
        num_blocks: N, the model's number of blocks.
        sublayers: whether the model can scale the attention or MLP skip path alone.
    """
    layer_column, alpha_column, scope_column, mode_column = st.columns([3, 3, 2, 2])
    views.seed(
        "attenuate_layer",
        "layer",
        max(1, round(0.7 * num_blocks)),
        valid=lambda value: isinstance(value, int) and 1 <= value <= num_blocks,
    )
    layer = layer_column.slider(
        "Block L",
        1,
        num_blocks,
        key="attenuate_layer",
        help=f"The block whose carried-over stream is scaled (1..{num_blocks})",
    )
    views.seed(
        "attenuate_alpha",
        "alpha",
        0.5,
        valid=lambda value: isinstance(value, float) and 0.0 <= value <= 1.0,
    )
    alpha = alpha_column.slider(
        "Strength α",
        0.0,
        1.0,
        step=0.05,
        key="attenuate_alpha",
        help="Scale of the carried-over stream: 1 leaves the model unchanged, 0 removes it",
    )
    views.seed("attenuate_scope", "scope", "single", valid=lambda value: value in SCOPE_LABELS)
    scope = scope_column.radio(
        "Scope", list(SCOPE_LABELS), format_func=SCOPE_LABELS.get, key="attenuate_scope"
    )
    views.seed(
        "attenuate_mode",
        "mode",
        "block",
        valid=lambda value: value == "block" or (sublayers and value in MODE_LABELS),
    )
    mode = mode_column.radio(
        "Skip path",
        list(MODE_LABELS) if sublayers else ["block"],
        format_func=MODE_LABELS.get,
        key="attenuate_mode",
        help="Scale the skip path around the whole block, or only around its attention "
        "or MLP sublayer",
    )
    for name, value in (("layer", layer), ("alpha", alpha), ("scope", scope), ("mode", mode)):
        remember(name, value)
    return Attenuation(int(layer), round(float(alpha), 4), scope, mode)


def describe(attenuation: Attenuation) -> str:
    """Return the setting in words, for figure titles and captions."""
    return (
        f"block {attenuation.layer}, α = {attenuation.alpha:g}, scope "
        f"{attenuation.scope}, {MODE_LABELS[attenuation.mode]}"
    )


# ---------------------------------------------------------------- headline numbers


def change_text(before: float | None, after: float | None) -> str | None:
    """Return the perplexity change as '+12.3%' (or '×250' past tenfold), None when undefined."""
    if before is None or after is None or not (math.isfinite(before) and math.isfinite(after)):
        return None
    ratio = after / before
    return f"{ratio - 1:+.1%}" if ratio < 10 else f"×{ratio:,.3g}"


def headline(base: FinalPrediction, attenuated: FinalPrediction) -> None:
    """Show perplexity before and after, the mean loss change and top-1 agreement."""
    columns = st.columns(4)
    columns[0].metric("Perplexity, unmodified", views.format_perplexity(base.perplexity))
    columns[1].metric(
        "Perplexity, attenuated",
        views.format_perplexity(attenuated.perplexity),
        delta=change_text(base.perplexity, attenuated.perplexity),
        delta_color="inverse",
        help="Change relative to the unmodified model. Lower is better.",
    )
    if base.perplexity is None:
        st.info(
            "Perplexity is undefined: a single token has no next token to predict. "
            "Add more text to measure the loss."
        )
        return

    changed = (attenuated.nll - base.nll).tolist()
    diverged = not all(math.isfinite(value) for value in changed)
    columns[2].metric(
        "Mean loss change",
        "diverged" if diverged else f"{sum(changed) / len(changed):+.3f} nats",
        help="Mean over the predicted tokens of the attenuated minus the unmodified loss",
    )
    same = (attenuated.top_ids[:, 0] == base.top_ids[:, 0]).mean()
    columns[3].metric(
        "Same top prediction",
        f"{same:.0%}",
        help="Positions whose most likely next token is unchanged by the attenuation",
    )
    if diverged or not math.isfinite(attenuated.perplexity):
        st.warning(
            "The attenuated model diverged: its loss is infinite or not a number at this "
            "setting. Raise α or pick another block."
        )


# ---------------------------------------------------------------- predictions


def predictions(
    base: FinalPrediction, attenuated: FinalPrediction, labels: list[str], tokenizer
) -> None:
    """Let the user pick a position and show both top-5 lists there, side by side."""
    positions = len(labels)
    views.seed(
        "attenuate_position",
        "position",
        positions - 1,
        valid=lambda value: isinstance(value, int) and 0 <= value < positions,
    )
    position = st.select_slider(
        "Position",
        list(range(positions)),
        key="attenuate_position",
        format_func=lambda t: f"{t}: {labels[t]}",
        help="The model's next-token predictions after this token",
    )
    remember("position", position)
    context = "".join(labels[max(0, position - 12) : position + 1])
    st.caption(f"Predictions after …{context}")

    for column, title, prediction in zip(
        st.columns(2), ("Unmodified", "Attenuated"), (base, attenuated), strict=True
    ):
        with column:
            st.markdown(f"**{title}**")
            st.dataframe(
                views.top_table(prediction, position, tokenizer),
                hide_index=True,
                width="stretch",
                column_config={"probability": views.PROBABILITY_COLUMN},
            )
            if position < positions - 1:
                probability = math.exp(-prediction.nll[position])
                st.caption(
                    f"Actual next token {labels[position + 1]}: probability {probability:.3f}"
                )


# ---------------------------------------------------------------- the landscape


def landscape_section(live: LiveAnalysis, attenuation: Attenuation, key: tuple) -> Landscape | None:
    """Draw the sweep controls, run the sweep on request and return the stored landscape.

    Args:
        key: model key, text and token cap. Scope and mode are added to it,
            because the landscape depends on them.
    """
    step_column, button_column = st.columns([2, 3], vertical_alignment="bottom")
    views.seed("attenuate_step", "alpha_step", 0.1, valid=lambda value: value in ALPHA_STEPS)
    step = step_column.selectbox("α step", ALPHA_STEPS, key="attenuate_step")
    remember("alpha_step", step)
    alphas = [round(i * step, 4) for i in range(round(1 / step) + 1)]
    blocks = list(range(1, live.lm.adapter.num_layers + 1))
    stored = st.session_state.setdefault("attenuate_landscapes", {})
    landscape_key = (*key, attenuation.scope, attenuation.mode)

    points = len(blocks) * len(alphas)
    if button_column.button(f"Compute {points} points", type="primary", key="attenuate_sweep"):
        bar = st.progress(0.0, text="Starting the sweep...")
        try:
            stored[landscape_key] = sweep(
                live,
                blocks,
                alphas,
                scope=attenuation.scope,
                mode=attenuation.mode,
                progress=lambda done, message: bar.progress(done, text=f"Sweeping: {message}"),
            )
        except ValueError as error:
            st.error(f"Could not compute the landscape: {error}")
        bar.empty()
        for old in list(stored)[:-KEPT_LANDSCAPES]:
            del stored[old]
    return stored.get(landscape_key)


def landscape_figure(landscape: Landscape, attenuation: Attenuation):
    """Return the landscape chart with the current setting outlined, sized to its grid."""
    return charts.landscape_chart(
        landscape.layers,
        landscape.alphas,
        landscape.perplexity,
        current=(attenuation.layer, attenuation.alpha),
        baseline=landscape.baseline,
    ).properties(
        width=min(max(240, 40 * len(landscape.alphas)), 720),
        height=min(max(240, 14 * len(landscape.layers)), 520),
    )
