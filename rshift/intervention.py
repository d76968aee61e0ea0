"""Effects of an attenuation on predictions: perplexity, per-token loss, top-k, continuation.

Every function takes the intervention as an argument and removes its hooks
before returning, so the shared model is never left modified.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rshift.analysis import Analysis, LiveAnalysis, top_predictions
from rshift.attenuation import Attenuation, install_attenuation
from rshift.hooks import HookSet
from rshift.models import LoadedModel, ProgressCallback


class Cancelled(RuntimeError):
    """A long computation was stopped by its caller."""


@dataclass(frozen=True)
class Comparison:
    """An attenuated run beside the unmodified baseline of the same text.

    Attributes:
        baseline, attenuated: full analyses.
        loss_change: ``(positions - 1,)`` attenuated minus baseline NLL per token.
        top_baseline, top_attenuated: per position, the final top-k (label, probability).
        continuation_baseline, continuation_attenuated: greedy continuations (text).
    """

    baseline: Analysis
    attenuated: Analysis
    loss_change: np.ndarray
    top_baseline: list[list[tuple[str, float]]]
    top_attenuated: list[list[tuple[str, float]]]
    continuation_baseline: str
    continuation_attenuated: str

    @property
    def perplexity_change(self) -> float | None:
        """Relative change of perplexity (0.1 = 10% higher); None when undefined."""
        base, other = self.baseline.perplexity, self.attenuated.perplexity
        if base is None or other is None:
            return None
        if math.isinf(other):
            return math.inf
        return other / base - 1.0


def compare(
    live: LiveAnalysis, attenuation: Attenuation, *, continuation_tokens: int = 12
) -> Comparison:
    """Run ``attenuation`` on the text held by ``live`` and set it beside the baseline."""
    tokenizer = live.lm.tokenizer
    baseline = live.baseline
    attenuated = live.run(attenuation)
    prompt = live.text.ids
    return Comparison(
        baseline=baseline,
        attenuated=attenuated,
        loss_change=attenuated.nll - baseline.nll,
        top_baseline=top_predictions(baseline, tokenizer),
        top_attenuated=top_predictions(attenuated, tokenizer),
        continuation_baseline=greedy_continuation(live.lm, prompt, None, continuation_tokens),
        continuation_attenuated=greedy_continuation(
            live.lm, prompt, attenuation, continuation_tokens
        ),
    )


@torch.inference_mode()
def greedy_continuation(
    lm: LoadedModel,
    prompt_ids: torch.Tensor,
    attenuation: Attenuation | None = None,
    max_new_tokens: int = 12,
) -> str:
    """Greedily continue ``prompt_ids`` ``(positions,)`` and return the new text only.

    The attenuation acts on each position's own stream, so keys and values
    cached under the same hooks stay exact and each step feeds one token.
    """
    ids = prompt_ids.view(1, -1).to(lm.device)
    limit = max(0, min(max_new_tokens, lm.max_context - ids.shape[1]))
    new_tokens: list[int] = []
    eos = lm.tokenizer.eos_token_id
    past = None
    with HookSet() as hooks:
        install_attenuation(hooks, lm.adapter, attenuation)
        for _ in range(limit):
            output = lm.model(input_ids=ids, past_key_values=past, use_cache=True)
            logits = output.logits[0, -1]
            if not torch.isfinite(logits).all():
                break
            token = int(logits.argmax())
            new_tokens.append(token)
            if token == eos:
                break
            past = output.past_key_values
            ids = ids.new_tensor([[token]])
    return lm.tokenizer.decode(new_tokens)


@dataclass(frozen=True)
class Landscape:
    """Perplexity over attenuation layer × strength for one text.

    Attributes:
        layers: the block numbers swept.
        alphas: the strengths swept.
        perplexity: ``(len(layers), len(alphas))``; inf where diverged, NaN where not computed.
        baseline: perplexity of the unmodified model.
        cancelled: whether the sweep stopped early.
    """

    layers: list[int]
    alphas: list[float]
    perplexity: np.ndarray
    baseline: float | None
    scope: str
    mode: str
    cancelled: bool = False

    def to_rows(self) -> list[dict[str, object]]:
        """Return one row per (layer, alpha), perplexity None where diverged or missing."""
        rows = []
        for i, layer in enumerate(self.layers):
            for j, alpha in enumerate(self.alphas):
                value = float(self.perplexity[i, j])
                finite = math.isfinite(value)
                rows.append(
                    {
                        "layer": layer,
                        "alpha": alpha,
                        "perplexity": value if finite else None,
                        "diverged": math.isinf(value),
                    }
                )
        return rows


def sweep(
    live: LiveAnalysis,
    layers: Sequence[int],
    alphas: Sequence[float],
    *,
    scope: str = "single",
    mode: str = "block",
    progress: ProgressCallback | None = None,
    cancel: threading.Event | Callable[[], bool] | None = None,
) -> Landscape:
    """Compute perplexity for every (layer, alpha) by rerunning only blocks L..N.

    Args:
        progress: called with the fraction done and a description after each point.
        cancel: an Event or a callable; when it is set the sweep stops and
            returns what it has, with ``cancelled=True``.
    """
    num_layers = live.lm.adapter.num_layers
    settings = [
        [Attenuation(layer, float(alpha), scope, mode) for alpha in alphas] for layer in layers
    ]
    for row in settings:
        row[0].validate(num_layers)
    if len(live.text) < 2:
        raise ValueError("The perplexity landscape needs a text of at least two tokens.")

    grid = np.full((len(layers), len(alphas)), np.nan)
    total = grid.size
    done = 0
    stopped = False
    for i, row in enumerate(settings):
        for j, attenuation in enumerate(row):
            if is_cancelled(cancel):
                stopped = True
                break
            value = live.final(attenuation).perplexity
            grid[i, j] = math.inf if value is None or not math.isfinite(value) else value
            done += 1
            if progress:
                progress(done / total, f"layer {attenuation.layer}, alpha {attenuation.alpha:g}")
        if stopped:
            break

    return Landscape(
        layers=list(layers),
        alphas=[float(alpha) for alpha in alphas],
        perplexity=grid,
        baseline=live.baseline.perplexity,
        scope=scope,
        mode=mode,
        cancelled=stopped,
    )


def is_cancelled(cancel: threading.Event | Callable[[], bool] | None) -> bool:
    """Return whether ``cancel`` (an Event, a callable or None) requests a stop."""
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())
