"""Settings that survive page switches, and the view kept in the URL query."""

from __future__ import annotations

import os
from dataclasses import dataclass

import streamlit as st

from rshift.models import DEFAULT_MODEL

QUERY_KEYS = ("model", "prompt", "layer", "alpha", "metric")
DEFAULT_MAX_TOKENS = 256


def default_model() -> str:
    """Return the model to start with: ``$RSHIFT_MODEL`` (used by tests) or the bundled one."""
    return os.environ.get("RSHIFT_MODEL", DEFAULT_MODEL)


@dataclass(frozen=True)
class ModelSettings:
    """The sidebar's choices; also the cache key of the loaded model."""

    model: str
    device: str = "auto"
    dtype: str = "float32"
    max_tokens: int = DEFAULT_MAX_TOKENS


def remember(key: str, value) -> None:
    """Store a value under a non-widget key so it survives page switches."""
    st.session_state[f"keep_{key}"] = value


def recall(key: str, default=None):
    """Return a value stored with :func:`remember`, or ``default``."""
    return st.session_state.get(f"keep_{key}", default)


def restore_query_once() -> None:
    """Copy the view from the URL query into the session, once per session.

    A shared link carries model, prompt, layer, alpha and metric; after the
    first run the widgets own these values.
    """
    if st.session_state.get("query_restored"):
        return
    st.session_state["query_restored"] = True
    params = st.query_params
    converters = {"layer": int, "alpha": float}
    for key in QUERY_KEYS:
        if key not in params:
            continue
        try:
            remember(key, converters.get(key, str)(params[key]))
        except ValueError:
            continue


def publish_query(**values) -> None:
    """Write the current view into the URL query so a copied link reopens it."""
    for key, value in values.items():
        if key not in QUERY_KEYS or value is None:
            continue
        text = str(value)
        if key == "prompt":
            text = text[:1500]
        if st.query_params.get(key) != text:
            st.query_params[key] = text
