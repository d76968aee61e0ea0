"""The sidebar shared by every page: model, device, dtype, token cap and model facts."""

from __future__ import annotations

import streamlit as st

from rshift.models import CATALOGUE, LoadedModel
from ui.cache import get_model
from ui.state import DEFAULT_MAX_TOKENS, ModelSettings, default_model, recall, remember

OTHER = "Other (folder, .gguf file or hub id)"
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("float32", "bfloat16", "float16")


def render() -> tuple[ModelSettings, LoadedModel | None]:
    """Draw the sidebar, load the chosen model and return it with the settings."""
    with st.sidebar:
        st.header("Model")
        settings = _model_settings()
        lm = get_model(settings)
        if lm is not None:
            _facts(lm)
    st.session_state["loaded_model"] = lm
    st.session_state["model_settings"] = settings
    return settings, lm


def _model_settings() -> ModelSettings:
    wanted = recall("model", default_model())
    choices = [*CATALOGUE, OTHER]
    index = choices.index(wanted) if wanted in CATALOGUE else len(choices) - 1
    choice = st.selectbox("Model", choices, index=index, help="A bundled model or your own")
    if choice == OTHER:
        custom = st.text_input(
            "Path or hub id",
            value="" if wanted in CATALOGUE else wanted,
            help="A Hugging Face model folder, a .gguf file, or a hub id (needs network)",
        ).strip()
        model = custom or default_model()
    else:
        model = choice
    remember("model", model)

    device = st.selectbox(
        "Device",
        DEVICES,
        index=DEVICES.index(recall("device", "auto")),
        help="auto picks CUDA, then MPS, then the CPU",
    )
    dtype = st.selectbox(
        "Dtype",
        DTYPES,
        index=DTYPES.index(recall("dtype", "float32")),
        help="float32 matches the reference numbers; half precision is for GPUs",
    )
    max_tokens = st.number_input(
        "Token cap",
        min_value=2,
        max_value=4096,
        step=16,
        value=int(recall("max_tokens", DEFAULT_MAX_TOKENS)),
        help="Longer texts are truncated to this many tokens",
    )
    remember("device", device)
    remember("dtype", dtype)
    remember("max_tokens", int(max_tokens))
    return ModelSettings(model=model, device=device, dtype=dtype, max_tokens=int(max_tokens))


def _facts(lm: LoadedModel) -> None:
    facts = lm.facts()
    softcap = facts["softcap"] if facts["softcap"] else "none"
    st.caption(
        f"**{facts['name']}** · {facts['family']} · {facts['num_layers']} blocks · "
        f"hidden {facts['hidden_size']} · vocab {facts['vocab_size']:,}  \n"
        f"embeddings {'tied' if facts['tied'] else 'untied'} · embedding scale "
        f"{facts['embedding_scale']:.3g} · softcap {softcap} · {facts['device']} {facts['dtype']}"
    )
    if not facts["tied"]:
        st.caption("Untied: the lens uses the output matrix, cosines use the input embedding.")


def current_model() -> tuple[ModelSettings, LoadedModel | None]:
    """Return what the sidebar loaded on this run (pages call this)."""
    return st.session_state.get("model_settings"), st.session_state.get("loaded_model")
