"""Present: the figures collected in this session, one at a time, large, with exports."""

import html
import re

import altair as alt
import streamlit as st

from rshift import export
from rshift.charts import apply_talk_theme
from ui import views
from ui.figures import figures, remove_figure, update_figure
from ui.state import remember

SCALES = (1.0, 1.3, 1.6, 2.0, 2.5)
SLIDE_HEIGHT = 520

views.require_shell()
views.publish_view()
slides = figures()

if not slides:
    st.title("Present")
    st.info(
        "No figures yet. Every chart on the Explore and Attenuate pages (and on Batch and "
        "Gates) has an **Add to presentation** button below it; press it and the chart "
        "shows up here, one per slide, in large type, ready to export as PNG, SVG or one "
        "offline HTML file."
    )
    st.page_link("pages/explore.py", label="Go to Explore", icon=":material/search:")
    st.stop()

count = len(slides)
views.seed("present_slide", "slide", 0, valid=lambda value: value in range(count))


def step(by: int) -> None:
    """Move ``by`` slides, staying within the deck."""
    current = st.session_state.get("present_slide", 0)
    st.session_state["present_slide"] = min(max(current + by, 0), count - 1)


def remove(key: str) -> None:
    """Drop a figure and show the one before it."""
    remove_figure(key)
    st.session_state["present_slide"] = max(0, st.session_state.get("present_slide", 0) - 1)


# ---------------------------------------------------------------- navigation

back, pick, forward = st.columns([1, 4, 1], vertical_alignment="bottom")
index = st.session_state["present_slide"]
back.button(
    "◀ Previous", on_click=step, args=(-1,), disabled=index == 0, width="stretch", key="prev"
)
forward.button(
    "Next ▶", on_click=step, args=(1,), disabled=index == count - 1, width="stretch", key="next"
)
index = pick.selectbox(
    "Figure",
    list(range(count)),
    key="present_slide",
    format_func=lambda i: f"{i + 1} of {count}: {slides[i].title}",
    label_visibility="collapsed",
)
remember("slide", index)
slide = slides[index]

views.seed("present_scale", "talk_scale", 1.6, valid=lambda value: value in SCALES)

# ---------------------------------------------------------------- the slide

st.title(slide.title)
chart = apply_talk_theme(slide.chart, scale=st.session_state["present_scale"])
# Composite charts (stacked heatmaps) keep their own size; single views fill the width.
composite = isinstance(chart, alt.VConcatChart | alt.HConcatChart | alt.ConcatChart)
if composite:
    st.altair_chart(chart, theme=None, width="content")
else:
    st.altair_chart(chart, theme=None, width="stretch", height=SLIDE_HEIGHT)
if slide.caption:
    st.markdown(
        f'<p style="font-size:1.35rem">{html.escape(slide.caption)}</p>', unsafe_allow_html=True
    )

# ---------------------------------------------------------------- export and edit


def file_stem(title: str) -> str:
    """Return a file name stem made from a figure title."""
    stem = re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower()
    return stem[:60] or "figure"


st.divider()
png, svg, everything = st.columns(3)
png.download_button(
    "Download PNG",
    data=lambda: export.to_png(chart),
    file_name=f"{file_stem(slide.title)}.png",
    mime="image/png",
    on_click="ignore",
    icon=":material/image:",
    key="download_png",
)
svg.download_button(
    "Download SVG",
    data=lambda: export.to_svg(chart),
    file_name=f"{file_stem(slide.title)}.svg",
    mime="image/svg+xml",
    on_click="ignore",
    icon=":material/draw:",
    key="download_svg",
)
everything.download_button(
    f"Download all {count} as one HTML file",
    data=lambda: export.to_html([(s.title, s.caption, s.chart) for s in slides]),
    file_name="rshift-figures.html",
    mime="text/html",
    on_click="ignore",
    icon=":material/folder_zip:",
    help="One self-contained page with every figure; it opens without a network connection",
    key="download_html",
)

with st.expander("Edit this slide"):
    scale = st.select_slider(
        "Font size", SCALES, key="present_scale", format_func=lambda s: f"{s:g}×"
    )
    remember("talk_scale", scale)
    with st.form("present_edit", border=False):
        title = st.text_input("Title", value=slide.title)
        caption = st.text_area("Caption", value=slide.caption, height=80)
        if st.form_submit_button("Save title and caption", key="present_save"):
            update_figure(slide.key, title.strip() or slide.title, caption.strip())
            st.rerun()
    st.button("Remove this figure", key="present_remove", on_click=remove, args=(slide.key,))
