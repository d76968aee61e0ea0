"""Attenuate: scale the residual stream a block carries over and measure what changes."""

import math

import streamlit as st

from rshift import charts
from rshift.attenuation import Attenuation
from rshift.intervention import sweep
from ui import views
from ui.cache import attenuated_analysis, continuation, final_prediction, model_key
from ui.figures import present_button
from ui.state import recall, remember

SCOPE_LABELS = {"single": "block L only", "from": "blocks L to N"}
MODE_LABELS = {"block": "whole block", "attention": "attention skip", "mlp": "MLP skip"}
ALPHA_STEPS = (0.05, 0.1, 0.2, 0.25)
CONTINUATION_TOKENS = 12

settings, lm = views.require_model()
num_blocks = lm.adapter.num_layers
key = model_key(lm)

st.title("Attenuate")
st.caption(
    "Block L keeps its own update while the stream it carries over is scaled by α: "
    "h_L = α·h_{L−1} + (Block_L(h_{L−1}) − h_{L−1}). α = 1 is the unmodified model."
)

text = views.prompt_box("attenuate")


# ---------------------------------------------------------------- the setting


def setting_controls() -> Attenuation:
    """Draw layer, strength, scope and mode; return the attenuation they describe."""
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
    sublayers = lm.adapter.supports_sublayer_modes
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


attenuation = setting_controls()
views.publish_view(model=settings.model, layer=attenuation.layer, alpha=attenuation.alpha)

live = views.analyse(lm, settings, text)
if live is None:
    st.stop()
views.show_notices(live.baseline)
labels = list(live.text.labels)
positions = len(labels)

try:
    base = final_prediction(live, key, text, settings.max_tokens, None)
    attenuated = final_prediction(live, key, text, settings.max_tokens, attenuation)
except ValueError as error:
    st.error(f"Could not apply this attenuation: {error}")
    st.stop()


# ---------------------------------------------------------------- live numbers


def change_text(before: float | None, after: float | None) -> str | None:
    """Return the relative perplexity change as '+12.3%', or None when undefined."""
    if before is None or after is None or not (math.isfinite(before) and math.isfinite(after)):
        return None
    return f"{after / before - 1:+.1%}"


columns = st.columns(4)
columns[0].metric("Perplexity, unmodified", views.format_perplexity(base.perplexity))
columns[1].metric(
    "Perplexity, attenuated",
    views.format_perplexity(attenuated.perplexity),
    delta=change_text(base.perplexity, attenuated.perplexity),
    delta_color="inverse",
    help="The change is relative to the unmodified model; lower is better",
)
if positions > 1:
    changed = (attenuated.nll - base.nll).tolist()
    diverged = not all(math.isfinite(value) for value in changed)
    columns[2].metric(
        "Mean loss change",
        "diverged" if diverged else f"{sum(changed) / len(changed):+.3f} nats",
        help="Mean over the predicted tokens of the attenuated minus the unmodified loss",
    )
    agreement = (attenuated.top_ids[:, 0] == base.top_ids[:, 0]).mean()
    columns[3].metric(
        "Same top prediction",
        f"{agreement:.0%}",
        help="Positions whose most likely next token is unchanged by the attenuation",
    )
    if diverged or not math.isfinite(attenuated.perplexity):
        st.warning(
            "The attenuated model diverged: its loss is infinite or not a number at this "
            "setting. Raise α or pick another block."
        )
else:
    st.info(
        "Perplexity is undefined: a single token has no next token to predict. "
        "Add more text to measure the loss."
    )

if positions > 1:
    st.subheader("Where the loss changes")
    loss_chart = charts.loss_change_chart(base.nll, attenuated.nll, labels)
    views.show_chart(loss_chart)
    st.caption("Red bars: the attenuation made that token harder to predict; blue: easier.")
    present_button(
        "attenuate_loss",
        f"Loss change per token, block {attenuation.layer}, α = {attenuation.alpha:g}",
        f"{lm.name}, scope {attenuation.scope}, {MODE_LABELS[attenuation.mode]}, "
        f"on “{views.snippet(text)}”.",
        loss_chart,
    )


# ---------------------------------------------------------------- predictions


st.subheader("Top predictions")
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
left, right = st.columns(2)
for column, title, prediction in (
    (left, "Unmodified", base),
    (right, "Attenuated", attenuated),
):
    with column:
        st.markdown(f"**{title}**")
        st.dataframe(
            views.top_table(prediction, position, lm.tokenizer),
            hide_index=True,
            width="stretch",
            column_config={"probability": views.PROBABILITY_COLUMN},
        )
        if position < positions - 1:
            probability = math.exp(-prediction.nll[position])
            st.caption(f"Actual next token {labels[position + 1]}: probability {probability:.3f}")

st.subheader("Greedy continuation")
left, right = st.columns(2)
with st.spinner("Continuing the text..."):
    for column, title, setting in (
        (left, "Unmodified", None),
        (right, "Attenuated", attenuation),
    ):
        generated = continuation(live, key, text, settings.max_tokens, setting, CONTINUATION_TOKENS)
        column.markdown(f"**{title}**")
        column.code(
            generated or "(nothing: the model stopped at once)", language=None, wrap_lines=True
        )
st.caption(f"The next {CONTINUATION_TOKENS} tokens, each the most likely one.")


# ---------------------------------------------------------------- maps under attenuation


st.subheader("Alignment under attenuation")
map_controls = st.columns([2, 3])
with map_controls[0]:
    family = views.metric_picker("attenuate")
with map_controls[1]:
    views.seed("attenuate_maps", "attenuate_maps", True)
    draw_maps = st.toggle(
        "Draw the maps",
        key="attenuate_maps",
        help="Reruns blocks L..N through the lens at every change: a few seconds on a CPU. "
        "Turn it off to keep the sliders quick.",
    )
remember("attenuate_maps", draw_maps)
views.publish_view(metric=family)

if draw_maps:
    with st.spinner("Decoding every layer under the attenuation..."):
        after = attenuated_analysis(live, key, text, settings.max_tokens, attenuation)
    map_key = (key, text, settings.max_tokens, attenuation)
    exclude = tuple(after.excluded(recall("skip_first", True), recall("skip_sinks", False)))
    change_tab, under_tab = st.tabs(["Change from the unmodified model", "Maps under attenuation"])
    with under_tab:
        maps = views.alignment_chart(
            after, lm.tokenizer, map_key, family, exclude, True, (1.0, 99.0)
        )
        views.show_chart(maps)
        present_button(
            "attenuate_maps",
            f"Alignment under attenuation ({views.FAMILY_LABELS[family]}), block "
            f"{attenuation.layer}, α = {attenuation.alpha:g}",
            f"{lm.name}, scope {attenuation.scope}, {MODE_LABELS[attenuation.mode]}, "
            f"on “{views.snippet(text)}”.",
            maps,
        )
    with change_tab:
        for side in ("current", "next"):
            metric = f"{family}_{side}"
            change = views.change_chart(
                live.baseline, after, lm.tokenizer, map_key, metric, exclude
            )
            views.show_chart(change)
            present_button(
                f"attenuate_change_{side}",
                f"Change of {metric}, block {attenuation.layer}, α = {attenuation.alpha:g}",
                f"Attenuated minus unmodified, {lm.name}, on “{views.snippet(text)}”.",
                change,
            )
else:
    st.caption("Turn on “Draw the maps” to see every layer under this attenuation.")


# ---------------------------------------------------------------- the landscape


st.subheader("Perplexity landscape")
st.caption(
    "Perplexity for every block and strength, with the same scope and skip path as above. "
    "Each point reruns blocks L..N; changing any control stops the sweep."
)
step_column, button_column = st.columns([2, 3])
views.seed("attenuate_step", "alpha_step", 0.1, valid=lambda value: value in ALPHA_STEPS)
step = step_column.selectbox("α step", ALPHA_STEPS, key="attenuate_step")
remember("alpha_step", step)
alphas = [round(i * step, 4) for i in range(round(1 / step) + 1)]
blocks = list(range(1, num_blocks + 1))
landscape_key = (key, text, settings.max_tokens, attenuation.scope, attenuation.mode)
landscapes = st.session_state.setdefault("attenuate_landscapes", {})
button_column.markdown("&nbsp;")
if button_column.button(
    f"Compute {len(blocks) * len(alphas)} points", type="primary", key="attenuate_sweep"
):
    bar = st.progress(0.0, text="Starting the sweep...")
    try:
        landscapes[landscape_key] = sweep(
            live,
            blocks,
            alphas,
            scope=attenuation.scope,
            mode=attenuation.mode,
            progress=lambda fraction, message: bar.progress(fraction, text=f"Sweeping: {message}"),
        )
    except ValueError as error:
        st.error(f"Could not compute the landscape: {error}")
    bar.empty()

landscape = landscapes.get(landscape_key)
if landscape is None:
    st.caption("Press the button to compute it; the current setting is outlined on the map.")
else:
    landscape_chart = charts.landscape_chart(
        landscape.layers,
        landscape.alphas,
        landscape.perplexity,
        current=(attenuation.layer, attenuation.alpha),
        baseline=landscape.baseline,
    )
    views.show_chart(landscape_chart)
    present_button(
        "attenuate_landscape",
        f"Perplexity landscape, {lm.name}",
        f"Scope {landscape.scope}, {MODE_LABELS[landscape.mode]}, on “{views.snippet(text)}”.",
        landscape_chart,
    )
