"""rshift: the Streamlit app. Run with `make run` or `streamlit run app.py`."""

import logging

import streamlit as st

from ui import sidebar
from ui.state import restore_query_once

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
st.set_page_config(page_title="rshift", page_icon=":material/swap_vert:", layout="wide")

PAGES = [
    # Material icons ship with Streamlit, so they render without an emoji font.
    st.Page("pages/explore.py", title="Explore", icon=":material/grid_on:", default=True),
    st.Page("pages/attenuate.py", title="Attenuate", icon=":material/tune:"),
    st.Page("pages/batch.py", title="Batch", icon=":material/library_books:"),
    st.Page("pages/gates.py", title="Gates", icon=":material/toggle_on:"),
    st.Page("pages/present.py", title="Present", icon=":material/slideshow:"),
]

navigation = st.navigation(PAGES)
restore_query_once()
sidebar.render()
navigation.run()
