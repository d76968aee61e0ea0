"""Figures collected during a session, for the Present page."""

from __future__ import annotations

from dataclasses import dataclass

import altair as alt
import streamlit as st

MAX_FIGURES = 40


@dataclass(frozen=True)
class Figure:
    """One chart with the title and caption it gets on a slide."""

    key: str
    title: str
    caption: str
    chart: alt.TopLevelMixin


def figures() -> list[Figure]:
    """Return this session's figures, oldest first."""
    return st.session_state.setdefault("figures", [])


def add_figure(key: str, title: str, caption: str, chart: alt.TopLevelMixin) -> None:
    """Add or replace the figure stored under ``key`` (one slot per page view)."""
    stored = [figure for figure in figures() if figure.key != key]
    stored.append(Figure(key, title, caption, chart))
    st.session_state["figures"] = stored[-MAX_FIGURES:]


def present_button(key: str, title: str, caption: str, chart: alt.TopLevelMixin) -> None:
    """Draw a small button that adds ``chart`` to the Present page."""
    if st.button("Add to presentation", key=f"present_{key}", help="Show it on the Present page"):
        add_figure(key, title, caption, chart)
        st.toast(f"Added '{title}' to the presentation")


def update_figure(key: str, title: str, caption: str) -> None:
    """Change the title and caption of the figure under ``key``, keeping its place."""
    st.session_state["figures"] = [
        Figure(key, title, caption, figure.chart) if figure.key == key else figure
        for figure in figures()
    ]


def remove_figure(key: str) -> None:
    """Drop the figure stored under ``key``."""
    st.session_state["figures"] = [figure for figure in figures() if figure.key != key]
