"""An independent float32 reference for the metrics contract.

Written from the definitions in the design document, with plain torch on the
Hugging Face model object. It deliberately shares no code with the rshift
engine: no adapter, no stream capture, no chunked lens. Loops are naive where
that makes the definition easier to check by eye.

The residual stream h_0..h_N comes from ``output_hidden_states``: entries
0..N-1 are the inputs of blocks 1..N. Hugging Face's last entry is taken after
the final norm, so h_N is read instead by a forward hook on the last block
that this module registers and removes itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

METRICS = (
    "logprob_current",
    "logprob_next",
    "rank_current",
    "rank_next",
    "cosine_current",
    "cosine_next",
)


@dataclass
class Reference:
    """Reference numbers for one text.

    Attributes:
        ids: the token ids, ``(positions,)``.
        metrics: name -> ``(layers, positions)`` float64, NaN where undefined.
        near_ties: ``rank_current`` / ``rank_next`` -> ``(layers, positions)``
            count of other vocabulary entries whose lens logit lies within the
            tie tolerance of the target token's logit.
        shift: ``(positions,)`` shift layer, NaN where undefined.
        perplexity: exp of the mean cross-entropy of the final logits, or None.
        final_logits: the model's own logits, ``(positions, vocab)``.
        last_lens: the lens at layer N, ``(positions, vocab)``.
        stream: h_0..h_N, each ``(positions, hidden)``.
    """

    ids: list[int]
    metrics: dict[str, np.ndarray]
    near_ties: dict[str, np.ndarray]
    shift: np.ndarray
    perplexity: float | None
    final_logits: torch.Tensor
    last_lens: torch.Tensor
    stream: list[torch.Tensor]


def model_parts(model):
    """Return (blocks, final norm, input embedding matrix, head) by attribute path."""
    if model.config.model_type == "gpt2":
        body = model.transformer
        return list(body.h), body.ln_f, body.wte.weight, model.lm_head
    body = model.model
    return list(body.layers), body.norm, body.embed_tokens.weight, model.lm_head


@torch.no_grad()
def residual_stream(model, ids: list[int]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Return h_0..h_N (each ``(positions, hidden)``) and the model's logits."""
    blocks, _, _, _ = model_parts(model)
    seen: list[torch.Tensor] = []

    def keep_output(module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        seen.append(hidden.detach().clone())

    handle = blocks[-1].register_forward_hook(keep_output)
    try:
        device = next(model.parameters()).device
        batch = torch.tensor([ids], device=device)
        out = model(input_ids=batch, output_hidden_states=True, use_cache=False)
    finally:
        handle.remove()

    assert len(seen) == 1, "the last block ran more than once"
    assert len(out.hidden_states) == len(blocks) + 1
    stream = [state[0].float() for state in out.hidden_states[: len(blocks)]]
    stream.append(seen[0][0].float())
    return stream, out.logits[0].float()


def lens(model, hidden: torch.Tensor) -> torch.Tensor:
    """Apply the logit lens softcap(W_U · finalnorm(h) + b) to states ``(positions, hidden)``."""
    _, final_norm, _, head = model_parts(model)
    logits = head(final_norm(hidden)).float()
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = cap * torch.tanh(logits / cap)
    return logits


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a = a.double()
    b = b.double()
    return float((a * b).sum() / (a.norm() * b.norm()))


def shift_layer(logprob_current: np.ndarray, logprob_next: np.ndarray, t: int) -> float:
    """Return the smallest l with logprob_next > logprob_current at l and every deeper layer."""
    layers = logprob_current.shape[0]
    for start in range(layers):
        aligned_to_end = True
        for layer in range(start, layers):
            if not logprob_next[layer, t] > logprob_current[layer, t]:
                aligned_to_end = False
                break
        if aligned_to_end:
            return float(start)
    return math.nan


@torch.no_grad()
def reference(model, tokenizer, text: str, tie_tolerance: float = 1e-4) -> Reference:
    """Compute every contract metric for ``text`` from the definitions."""
    ids = list(tokenizer(text)["input_ids"])
    positions = len(ids)
    stream, final_logits = residual_stream(model, ids)
    _, _, embedding, _ = model_parts(model)
    layers = len(stream)

    metrics = {name: np.full((layers, positions), np.nan) for name in METRICS}
    near_ties = {name: np.zeros((layers, positions)) for name in ("rank_current", "rank_next")}
    last_lens = None
    for layer, hidden in enumerate(stream):
        logits = lens(model, hidden)
        logprobs = torch.log_softmax(logits, dim=-1)
        if layer == layers - 1:
            last_lens = logits
        for t in range(positions):
            targets = {"current": ids[t]}
            if t + 1 < positions:
                targets["next"] = ids[t + 1]
            for role, token in targets.items():
                row = logits[t]
                target = row[token]
                metrics[f"logprob_{role}"][layer, t] = float(logprobs[t, token])
                metrics[f"rank_{role}"][layer, t] = int((row > target).sum())
                near = int(((row - target).abs() <= tie_tolerance).sum()) - 1
                near_ties[f"rank_{role}"][layer, t] = near
                metrics[f"cosine_{role}"][layer, t] = cosine(hidden[t], embedding[token])

    shift = np.full(positions, np.nan)
    for t in range(positions - 1):
        shift[t] = shift_layer(metrics["logprob_current"], metrics["logprob_next"], t)

    perplexity = None
    if positions > 1:
        targets = torch.tensor(ids[1:], device=final_logits.device)
        loss = torch.nn.functional.cross_entropy(final_logits[:-1], targets)
        perplexity = math.exp(float(loss))

    return Reference(
        ids=ids,
        metrics=metrics,
        near_ties=near_ties,
        shift=shift,
        perplexity=perplexity,
        final_logits=final_logits,
        last_lens=last_lens,
        stream=stream,
    )
