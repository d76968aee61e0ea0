"""The logit lens and the alignment metrics, computed in memory-bounded chunks.

lens_l(t) = softcap(W_U @ final_norm(h_l[t]) + b), with the model's own final
norm, unembedding and softcap. The lens never materialises a
``(layers, positions, vocabulary)`` tensor: rows of the flattened stream are
decoded a chunk at a time and only the numbers the metrics need are kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rshift.adapters import Adapter

# The logits of one chunk. 128 MiB keeps the lens matmul at 128 rows or more
# even for a 262k vocabulary, because with 32 rows the CPU matmul ran at about
# half its throughput. The reduction adds two scratch blocks of BLOCK_BYTES.
DEFAULT_CHUNK_BYTES = 128 * 1024 * 1024
# Each chunk is reduced a block of rows at a time in two scratch buffers of
# this size. Smaller blocks stay in the CPU cache, but every parallel op waits
# until all of torch's threads are scheduled, so on a CPU shared with other
# processes many small ops cost more than the cache saves. With SmolLM2 at 64
# tokens on a shared 2-core machine, 32 MiB was the fastest of 4, 8, 16 and
# 32 MiB. On the same machine when idle, 4 MiB blocks were about 20% faster
# than unblocked 128 MiB chunks.
BLOCK_BYTES = 32 * 1024 * 1024
TOP_K = 5

LENS_METRICS = (
    "logprob_current",
    "logprob_next",
    "rank_current",
    "rank_next",
    "prob_current",
    "prob_next",
    "entropy",
)
GEOMETRY_METRICS = (
    "cosine_current",
    "cosine_next",
    "projection_current",
    "projection_next",
    "projection_normed_current",
    "projection_normed_next",
)


@dataclass
class LensResult:
    """Alignment metrics of one stream.

    Attributes:
        metrics: name -> ``(layers, positions)`` float64 array. Metrics about the
            next token are NaN at the last position, where there is none.
        top_ids: ``(layers, positions, k)`` token ids of the top lens predictions.
        top_probs: ``(layers, positions, k)`` their probabilities.
        resid_norm: ``(layers, positions)`` L2 norm of each residual state.
    """

    metrics: dict[str, np.ndarray]
    top_ids: np.ndarray
    top_probs: np.ndarray
    resid_norm: np.ndarray


def lens_logits(
    adapter: Adapter, hidden: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Decode residual states ``(..., hidden)`` to float32 logits ``(..., vocab)``.

    Args:
        out: optional ``(rows, vocab)`` float32 tensor on the unembedding's
            device that receives the logits of 2-D ``hidden``, so repeated calls
            reuse one buffer. It is used only when the unembedding is float32,
            and the result is then ``out`` itself.
    """
    normed = adapter.final_norm(hidden)
    weight = adapter.unembedding_weight
    bias = adapter.unembedding_bias
    normed = normed.to(weight.device, weight.dtype)
    if out is not None and normed.dim() == 2 and weight.dtype == torch.float32:
        # The kernels F.linear itself calls for 2-D input, so the numbers are the same.
        if bias is None:
            logits = torch.mm(normed, weight.t(), out=out)
        else:
            logits = torch.addmm(bias, normed, weight.t(), out=out)
    else:
        logits = F.linear(normed, weight, bias).float()
    if adapter.softcap:
        # In place: ``logits`` is this call's own tensor, so no chunk-sized temporaries.
        logits.div_(adapter.softcap).tanh_().mul_(adapter.softcap)
    return logits


def chunk_rows(vocab_size: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Return how many lens rows fit in ``chunk_bytes`` of float32 logits (at least 1)."""
    return max(1, chunk_bytes // (4 * vocab_size))


@torch.inference_mode()
def compute_lens(
    adapter: Adapter,
    resid: torch.Tensor,
    token_ids: torch.Tensor,
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    top_k: int = TOP_K,
) -> LensResult:
    """Compute every lens and geometry metric for a stream.

    Args:
        adapter: the model's adapter.
        resid: ``(layers, positions, hidden)`` residual stream.
        token_ids: ``(positions,)`` the tokens of the text.
        chunk_bytes: memory budget for one chunk of float32 logits.
        top_k: how many top lens predictions to keep per state.
    """
    layers, positions, hidden_size = resid.shape
    device = adapter.unembedding_weight.device
    ids = token_ids.to(device)
    # The next token of the last position does not exist; a placeholder id
    # keeps shapes regular and its metrics are masked to NaN afterwards.
    next_ids = torch.cat([ids[1:], ids[-1:]])

    flat = resid.reshape(layers * positions, hidden_size)
    current = ids.repeat(layers)
    following = next_ids.repeat(layers)
    rows = min(chunk_rows(adapter.vocab_size, chunk_bytes), flat.shape[0])
    block = min(max(1, BLOCK_BYTES // (4 * adapter.vocab_size)), rows)
    # Every chunk reuses these buffers. A fresh chunk-sized tensor costs a page
    # fault per 4 KiB page on first touch, which added about 15% to the matmul
    # time on the 2-core machine of benchmarks/RESULTS.md.
    logits_out = torch.empty((rows, adapter.vocab_size), device=device)
    scratch = torch.empty((2, block, adapter.vocab_size), device=device)
    parts = [
        _lens_chunk(
            adapter,
            flat[i : i + rows],
            current[i : i + rows],
            following[i : i + rows],
            top_k,
            logits_out,
            scratch,
        )
        for i in range(0, flat.shape[0], rows)
    ]
    del logits_out, scratch  # free them before the geometry pass allocates its own
    merged = {key: torch.cat([part[key] for part in parts]) for key in parts[0]}

    metrics = {name: _as_grid(merged[name], layers, positions) for name in LENS_METRICS}
    metrics.update(_geometry(adapter, flat, current, following, layers, positions))
    for name, values in metrics.items():
        if name.endswith("_next"):
            values[:, -1] = np.nan

    return LensResult(
        metrics=metrics,
        top_ids=merged["top_ids"].reshape(layers, positions, -1).cpu().numpy(),
        top_probs=merged["top_probs"].reshape(layers, positions, -1).double().cpu().numpy(),
        resid_norm=_as_grid(flat.float().norm(dim=-1), layers, positions),
    )


def _lens_chunk(
    adapter, hidden, current, following, top_k, logits_out, scratch
) -> dict[str, torch.Tensor]:
    logits = lens_logits(adapter, hidden, out=logits_out[: hidden.shape[0]])
    rows = logits.shape[0]
    block = scratch.shape[1]
    parts = [
        _reduce_block(
            logits[i : i + block],
            current[i : i + block, None],
            following[i : i + block, None],
            top_k,
            scratch[:, : min(block, rows - i)],
        )
        for i in range(0, rows, block)
    ]
    return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}


def _reduce_block(logits, current, following, top_k, scratch) -> dict[str, torch.Tensor]:
    """Reduce ``(rows, vocab)`` logits to the metrics, reusing ``scratch`` ``(2, rows, vocab)``.

    The log-normaliser is written out as torch.logsumexp computes it (the max
    with infinities replaced by 0, exp of the shifted logits, sum, log), so the
    same exp pass also gives the entropy. With z = logits - max and e = exp(z),
    entropy = log(sum e) - sum(e * z) / sum e. In float32 this stays within
    about 1e-6 of a float64 computation, while log_norm - sum(p * logits)
    cancels two large terms and was off by up to 0.1 nats on Gemma 3.
    """
    top_logits, top_ids = logits.topk(top_k, dim=-1)
    current_logit = logits.gather(1, current)
    next_logit = logits.gather(1, following)

    # One comparison against both target logits, (2, rows, vocab) into the
    # scratch. Counting in float32 is exact below 2**24 entries and much
    # faster than summing a bool tensor.
    targets = torch.stack([current_logit, next_logit])
    rank_current, rank_next = torch.gt(logits, targets, out=scratch).sum(dim=-1).long()

    shifted, weights = scratch
    maximum = top_logits[:, :1].masked_fill(top_logits[:, :1].abs() == math.inf, 0)
    torch.sub(logits, maximum, out=shifted)
    torch.exp(shifted, out=weights)
    total = weights.sum(dim=-1)
    log_total = total.log()
    log_norm = log_total + maximum[:, 0]
    entropy = log_total - weights.mul_(shifted).sum(dim=-1) / total

    logprob_current = current_logit[:, 0] - log_norm
    logprob_next = next_logit[:, 0] - log_norm
    return {
        "logprob_current": logprob_current,
        "logprob_next": logprob_next,
        "rank_current": rank_current,
        "rank_next": rank_next,
        "prob_current": logprob_current.exp(),
        "prob_next": logprob_next.exp(),
        "entropy": entropy,
        "top_ids": top_ids,
        "top_probs": torch.exp(top_logits - log_norm[:, None]),
    }


def _geometry(adapter, flat, current, following, layers, positions) -> dict[str, np.ndarray]:
    """Cosines and projections of each state onto the unscaled embedding rows."""
    embedding = adapter.input_embedding.weight
    states = flat.to(embedding.device).float()
    normed = adapter.final_norm(flat).to(embedding.device).float()
    grids = {}
    for suffix, ids in (("current", current), ("next", following)):
        rows = embedding[ids.to(embedding.device)].float()
        unit = rows / rows.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        grids[f"cosine_{suffix}"] = F.cosine_similarity(states, rows, dim=-1, eps=1e-12)
        grids[f"projection_{suffix}"] = (states * unit).sum(dim=-1)
        grids[f"projection_normed_{suffix}"] = (normed * unit).sum(dim=-1)
    return {name: _as_grid(values, layers, positions) for name, values in grids.items()}


def _as_grid(values: torch.Tensor, layers: int, positions: int) -> np.ndarray:
    return values.reshape(layers, positions).double().cpu().numpy()


def token_nll(lens: LensResult) -> np.ndarray:
    """Return the final-layer NLL of x[t+1] at t = 0..T-2, shape ``(positions - 1,)``."""
    return -lens.metrics["logprob_next"][-1, :-1]


def perplexity(nll: np.ndarray) -> float | None:
    """Return exp(mean NLL), inf when it overflows, or None with no predicted token."""
    if nll.size == 0:
        return None
    mean = float(np.mean(nll))
    if math.isnan(mean):
        return math.inf
    return math.exp(mean) if mean < 700 else math.inf
