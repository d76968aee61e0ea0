"""Cached models and computations.

Models are cached with ``st.cache_resource`` keyed by model, device and dtype,
and shared by every session. Results are cached keyed by the model key plus
every input, so one model's numbers are never served for another.
"""

from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

from rshift.adapters import UnsupportedArchitectureError
from rshift.analysis import Analysis, FinalPrediction, LiveAnalysis
from rshift.attenuation import Attenuation
from rshift.intervention import greedy_continuation
from rshift.models import (
    CATALOGUE,
    LoadedModel,
    ModelLoadError,
    cache_entry_is_valid,
    cache_root,
    gguf_cache_key,
    load_model,
    prepare_catalogue_model,
    prepare_gguf,
)
from ui.state import ModelSettings

logger = logging.getLogger(__name__)


@st.cache_resource(show_spinner=False, max_entries=3)
def _load(model: str, device: str, dtype: str) -> LoadedModel:
    return load_model(model, device=device, dtype=dtype)


def get_model(settings: ModelSettings) -> LoadedModel | None:
    """Load the sidebar's model, with a progress bar while a GGUF file is converted.

    Returns None after showing an error message when the model cannot be loaded.
    """
    try:
        _prepare_with_progress(settings.model)
        with st.spinner(f"Loading {settings.model}..."):
            return _load(settings.model, settings.device, settings.dtype)
    except (ModelLoadError, UnsupportedArchitectureError) as error:
        logger.warning("Model %s failed to load: %s", settings.model, error)
        st.error(f"Could not load the model: {error}")
        return None


def _prepare_with_progress(model: str) -> None:
    """Convert a bundled model or GGUF file into the cache, showing progress."""
    if model in CATALOGUE:
        if cache_entry_is_valid(cache_root() / CATALOGUE[model].cache_key()):
            return
        convert = lambda report: prepare_catalogue_model(model, report)  # noqa: E731
    else:
        path = Path(model).expanduser()
        if not (path.is_file() and path.suffix == ".gguf"):
            return
        if cache_entry_is_valid(cache_root() / gguf_cache_key(path)):
            return
        convert = lambda report: prepare_gguf(path, gguf_cache_key(path), report)  # noqa: E731

    bar = st.progress(0.0, text=f"Preparing {model} (first use only)")
    convert(lambda fraction, message: bar.progress(min(max(fraction, 0.0), 1.0), text=message))
    bar.empty()


def model_key(lm: LoadedModel) -> str:
    """Return a string that identifies a loaded model for result caches."""
    return f"{lm.name}|{lm.source}|{lm.device}|{lm.dtype}"


@st.cache_resource(show_spinner="Analysing the text...", max_entries=16)
def live_analysis(_lm: LoadedModel, key: str, text: str, max_tokens: int) -> LiveAnalysis:
    """Return the baseline analysis of ``text``; it keeps the stream for fast updates."""
    return LiveAnalysis(_lm, text, max_tokens=max_tokens)


@st.cache_resource(show_spinner=False, max_entries=64)
def attenuated_analysis(
    _live: LiveAnalysis, key: str, text: str, max_tokens: int, attenuation: Attenuation
) -> Analysis:
    """Return the full analysis under ``attenuation`` (blocks L..N and lens rows L..N)."""
    return _live.run(attenuation)


@st.cache_resource(show_spinner=False, max_entries=128)
def final_prediction(
    _live: LiveAnalysis, key: str, text: str, max_tokens: int, attenuation: Attenuation | None
) -> FinalPrediction:
    """Return only the final-layer predictions under ``attenuation`` (the fast path)."""
    return _live.final(attenuation)


@st.cache_resource(show_spinner=False, max_entries=64)
def continuation(
    _live: LiveAnalysis,
    key: str,
    text: str,
    max_tokens: int,
    attenuation: Attenuation | None,
    new_tokens: int = 16,
) -> str:
    """Return the greedy continuation of the analysed text under ``attenuation``."""
    return greedy_continuation(_live.lm, _live.text.ids, attenuation, new_tokens)
