"""rshift: the Streamlit app. Run with `make run` or `streamlit run app.py`."""

import logging

import streamlit as st

from ui import sidebar
from ui.state import restore_query_once

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
st.set_page_config(page_title="rshift", page_icon="🔀", layout="wide")

PAGES = [
    st.Page("pages/explore.py", title="Explore", icon="🔍", default=True),
    st.Page("pages/attenuate.py", title="Attenuate", icon="🎚️"),
    st.Page("pages/batch.py", title="Batch", icon="📚"),
    st.Page("pages/gates.py", title="Gates", icon="🚪"),
    st.Page("pages/present.py", title="Present", icon="🖥️"),
]

navigation = st.navigation(PAGES)
restore_query_once()
sidebar.render()
navigation.run()
