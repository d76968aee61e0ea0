"""Attenuate: scale the residual stream a block carries over and measure what changes."""

import streamlit as st

from rshift import charts
from ui import attenuate_view as view
from ui import views
from ui.cache import attenuated_analysis, continuation, final_prediction, model_key
from ui.figures import present_button
from ui.state import recall, remember

CONTINUATION_TOKENS = 12

settings, lm = views.require_model()
key = model_key(lm)

st.title("Attenuate")
st.caption(
    "Block L keeps its own update while the stream it carries over is scaled by α: "
    "h_L = α·h_{L−1} + (Block_L(h_{L−1}) − h_{L−1}). α = 1 is the unmodified model."
)

text = views.prompt_box("attenuate")
attenuation = view.setting_controls(lm.adapter.num_layers, lm.adapter.supports_sublayer_modes)
views.publish_view(model=settings.model, layer=attenuation.layer, alpha=attenuation.alpha)
setting = view.describe(attenuation)
on_text = f"{lm.name}, on “{views.snippet(text)}”."

live = views.analyse(lm, settings, text)
if live is None:
    st.stop()
views.show_notices(live.baseline)
labels = list(live.text.labels)

# The fast path: only the final layer, so the numbers follow the sliders at once.
try:
    base = final_prediction(live, key, text, settings.max_tokens, None)
    attenuated = final_prediction(live, key, text, settings.max_tokens, attenuation)
except ValueError as error:
    st.error(f"Could not apply this attenuation: {error}")
    st.stop()
view.headline(base, attenuated)

if len(labels) > 1:
    st.subheader("Where the loss changes")
    loss_chart = charts.loss_change_chart(base.nll, attenuated.nll, labels)
    views.show_chart(loss_chart)
    st.caption(
        "Red bars mark tokens the attenuation made harder to predict, blue bars easier ones."
    )
    present_button("attenuate_loss", f"Loss change per token, {setting}", on_text, loss_chart)

st.subheader("Top predictions")
view.predictions(base, attenuated, labels, lm.tokenizer)

st.subheader("Greedy continuation")
# Generating runs the model once per new token, the slowest part of a slider
# update on a CPU, so it is opt-in.
show_continuation = st.toggle(
    "Continue the text",
    key="attenuate_continuation",
    help=f"Generate the next {CONTINUATION_TOKENS} tokens with and without the attenuation. "
    "Each new setting then takes a few seconds longer on a CPU.",
)
if show_continuation:
    with st.spinner("Continuing the text..."):
        for column, title, applied in zip(
            st.columns(2), ("Unmodified", "Attenuated"), (None, attenuation), strict=True
        ):
            generated = continuation(
                live, key, text, settings.max_tokens, applied, CONTINUATION_TOKENS
            )
            column.markdown(f"**{title}**")
            column.code(
                generated or "(nothing: the model stopped at once)", language=None, wrap_lines=True
            )
    st.caption(f"The next {CONTINUATION_TOKENS} tokens, each the most likely one.")

# ---------------------------------------------------------------- maps under attenuation

st.subheader("Alignment under attenuation")
metric_column, toggle_column = st.columns([2, 3], vertical_alignment="bottom")
with metric_column:
    family = views.metric_picker("attenuate")
views.seed("attenuate_maps", "attenuate_maps", True)
draw_maps = toggle_column.toggle(
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
    with change_tab:
        for side in ("current", "next"):
            metric = f"{family}_{side}"
            change = views.change_chart(
                live.baseline, after, lm.tokenizer, map_key, metric, exclude
            )
            views.show_chart(change)
            present_button(
                f"attenuate_change_{side}", f"Change of {metric}, {setting}", on_text, change
            )
    with under_tab:
        maps = views.alignment_chart(
            after, lm.tokenizer, map_key, family, exclude, True, (1.0, 99.0)
        )
        views.show_chart(maps)
        title = f"Alignment under attenuation ({views.FAMILY_LABELS[family]}), {setting}"
        present_button("attenuate_maps", title, on_text, maps)
else:
    st.caption("Turn on “Draw the maps” to see every layer under this attenuation.")

# ---------------------------------------------------------------- the landscape

st.subheader("Perplexity landscape")
st.caption(
    "Perplexity for every block and strength, with the scope and skip path chosen above. "
    "Each point reruns blocks L..N (about a second per point for a 100-token text on a "
    "two-core CPU). Changing any control stops the sweep."
)
landscape = view.landscape_section(live, attenuation, (key, text, settings.max_tokens))
if landscape is None:
    st.caption("Press the button to compute it; the current setting is outlined on the map.")
else:
    landscape_chart = view.landscape_figure(landscape, attenuation)
    views.show_chart(landscape_chart)
    present_button(
        "attenuate_landscape",
        f"Perplexity landscape, scope {landscape.scope}, {view.MODE_LABELS[landscape.mode]}",
        on_text,
        landscape_chart,
    )
