"""Explore page (placeholder until the page lands)."""

import streamlit as st

from ui.sidebar import current_model

settings, lm = current_model()
st.title("Explore")
if lm is not None:
    st.write(f"{lm.name}: {lm.adapter.num_layers} blocks")
