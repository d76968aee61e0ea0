"""Per-architecture facts: where the blocks, the final norm and the embeddings live.

This is the only module that uses attribute paths such as ``model.model.layers``
or ``model.transformer.h``. Everything else asks an :class:`Adapter`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

logger = logging.getLogger(__name__)


class UnsupportedArchitectureError(ValueError):
    """The model's architecture has no adapter in rshift."""


@dataclass(frozen=True)
class Adapter:
    """The modules and tensors of one loaded model that the logit lens and interventions use.

    The three ``*_output`` / ``*_input`` sequences have one module per block:
    ``attention_output[i]`` returns what block i adds to the stream after
    attention, ``mlp_output[i]`` what it adds after the MLP, and
    ``mlp_residual_input[i]`` receives the mid-block stream as its first input.
    """

    family: str
    backbone: nn.Module
    blocks: Sequence[nn.Module]
    final_norm: nn.Module
    input_embedding: nn.Embedding
    embedding_scale: float
    unembedding_weight: torch.Tensor
    unembedding_bias: torch.Tensor | None
    softcap: float | None
    tied: bool
    attention_output: Sequence[nn.Module]
    mlp_output: Sequence[nn.Module]
    mlp_residual_input: Sequence[nn.Module]

    @property
    def num_layers(self) -> int:
        """Number of blocks N; the residual stream has N + 1 entries."""
        return len(self.blocks)

    @property
    def hidden_size(self) -> int:
        return self.input_embedding.weight.shape[1]

    @property
    def vocab_size(self) -> int:
        return self.unembedding_weight.shape[0]

    @property
    def supports_sublayer_modes(self) -> bool:
        """Whether attention-only and MLP-only attenuation can be applied."""
        return len(self.attention_output) == len(self.blocks) == len(self.mlp_output)

    def facts(self) -> dict[str, object]:
        """Summarise the model for display: sizes, tying, scale and softcap."""
        return {
            "family": self.family,
            "num_layers": self.num_layers,
            "hidden_size": self.hidden_size,
            "vocab_size": self.vocab_size,
            "tied": self.tied,
            "embedding_scale": self.embedding_scale,
            "softcap": self.softcap,
        }


LLAMA_TYPES = {"llama", "qwen2", "qwen3", "mistral", "smollm3", "olmo2"}
GEMMA3_TYPES = {"gemma3_text", "gemma3"}
GPT2_TYPES = {"gpt2"}


def adapter_for(model: nn.Module) -> Adapter:
    """Build the adapter for a Hugging Face causal LM.

    Raises:
        UnsupportedArchitectureError: for an architecture outside the Llama,
            Gemma 3 and GPT-2 families, naming it.
    """
    model_type = check_model_type(model.config)
    if model_type in LLAMA_TYPES:
        return _llama_adapter(model)
    if model_type in GEMMA3_TYPES and hasattr(model, "model") and hasattr(model.model, "layers"):
        return _gemma3_adapter(model)
    if model_type in GPT2_TYPES:
        return _gpt2_adapter(model)
    raise UnsupportedArchitectureError(
        f"{type(model).__name__} (model_type {model_type!r}) has no text decoder rshift can read; "
        "load its causal LM class instead."
    )


def check_model_type(config) -> str:
    """Return ``config.model_type`` if an adapter reads it; otherwise raise, naming it."""
    model_type = getattr(config, "model_type", "")
    if model_type in LLAMA_TYPES | GEMMA3_TYPES | GPT2_TYPES:
        return model_type
    architectures = ", ".join(getattr(config, "architectures", None) or []) or "unknown"
    supported = sorted(LLAMA_TYPES | GEMMA3_TYPES | GPT2_TYPES)
    raise UnsupportedArchitectureError(
        f"Architecture {architectures} (model_type {model_type!r}) is not supported. "
        f"Supported model types: {', '.join(supported)}."
    )


def _llama_adapter(model: nn.Module) -> Adapter:
    backbone = model.model
    layers = list(backbone.layers)
    return _build(
        "llama",
        model,
        backbone=backbone,
        blocks=layers,
        final_norm=backbone.norm,
        input_embedding=backbone.embed_tokens,
        attention_output=[layer.self_attn for layer in layers],
        mlp_output=[layer.mlp for layer in layers],
        # Llama names the pre-MLP norm "post_attention_layernorm".
        mlp_residual_input=[layer.post_attention_layernorm for layer in layers],
    )


def _gemma3_adapter(model: nn.Module) -> Adapter:
    backbone = model.model
    layers = list(backbone.layers)
    # Gemma 3 normalises each sublayer's output before adding it back, so the
    # module whose output joins the stream is the post-sublayer norm.
    return _build(
        "gemma3",
        model,
        backbone=backbone,
        blocks=layers,
        final_norm=backbone.norm,
        input_embedding=backbone.embed_tokens,
        attention_output=[layer.post_attention_layernorm for layer in layers],
        mlp_output=[layer.post_feedforward_layernorm for layer in layers],
        mlp_residual_input=[layer.pre_feedforward_layernorm for layer in layers],
    )


def _gpt2_adapter(model: nn.Module) -> Adapter:
    backbone = model.transformer
    layers = list(backbone.h)
    return _build(
        "gpt2",
        model,
        backbone=backbone,
        blocks=layers,
        final_norm=backbone.ln_f,
        input_embedding=backbone.wte,
        attention_output=[layer.attn for layer in layers],
        mlp_output=[layer.mlp for layer in layers],
        mlp_residual_input=[layer.ln_2 for layer in layers],
    )


def _build(family: str, model: nn.Module, **parts) -> Adapter:
    input_embedding = parts["input_embedding"]
    head = model.get_output_embeddings()
    if head is None:
        raise UnsupportedArchitectureError(
            f"{type(model).__name__} has no output embedding; load a causal LM with a head."
        )

    softcap = getattr(model.config, "final_logit_softcapping", None)
    return Adapter(
        family=family,
        embedding_scale=float(getattr(input_embedding, "embed_scale", 1.0)),
        unembedding_weight=head.weight,
        unembedding_bias=getattr(head, "bias", None),
        softcap=float(softcap) if softcap else None,
        tied=embeddings_are_tied(input_embedding.weight, head.weight),
        **parts,
    )


def embeddings_are_tied(input_weight: torch.Tensor, output_weight: torch.Tensor) -> bool:
    """Decide tying from the tensors: shared storage, or equal values.

    The config flag alone is not trusted because converted checkpoints often
    set it without sharing the tensors, or share them without the flag.
    """
    if input_weight.shape != output_weight.shape:
        return False
    if input_weight.data_ptr() == output_weight.data_ptr():
        return True
    if input_weight.device != output_weight.device:
        return False
    return bool(torch.equal(input_weight, output_weight))
