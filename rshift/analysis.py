"""One text in, every alignment number out: the object the app, CLI and batch share."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from rshift.attenuation import Attenuation
from rshift.lens import (
    DEFAULT_CHUNK_BYTES,
    TOP_K,
    LensResult,
    compute_lens,
    lens_logits,
    perplexity,
    token_nll,
)
from rshift.models import LoadedModel
from rshift.shift import aligned_fraction, median_shift, shift_layers, sink_positions
from rshift.stream import Stream, capture_stream, recompute_from
from rshift.tokens import TokenizedText, tokenize

CONTRACT_METRICS = (
    "logprob_current",
    "logprob_next",
    "rank_current",
    "rank_next",
    "cosine_current",
    "cosine_next",
)
SINGLE_TOKEN_NOTE = "undefined: a single token has no next token to predict"


@dataclass
class Analysis:
    """The residual-stream alignment of one text, optionally under an attenuation.

    Attributes:
        model: the model's facts (name, num_layers, hidden_size, vocab_size, tied, ...).
        text: the tokens; positions index ``text.ids``.
        lens: metrics as ``(layers, positions)`` arrays, top-k lens predictions.
        shift: ``(positions,)`` shift layer, NaN where undefined.
        sinks: attention-sink positions (always includes 0).
        nll: ``(positions - 1,)`` final-layer negative log-likelihood of each next token.
        perplexity: exp(mean nll); None for a single token; inf when diverged.
        attenuation: the intervention, or None for the unmodified model.
    """

    model: dict[str, object]
    text: TokenizedText
    lens: LensResult
    shift: np.ndarray
    sinks: list[int]
    nll: np.ndarray
    perplexity: float | None
    attenuation: Attenuation | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def num_layers(self) -> int:
        return int(self.model["num_layers"])

    @property
    def perplexity_note(self) -> str | None:
        if self.perplexity is None:
            return SINGLE_TOKEN_NOTE
        if math.isinf(self.perplexity):
            return "diverged: the loss is infinite or not a number under this setting"
        return None

    @property
    def diverged(self) -> bool:
        return not np.isfinite(self.lens.metrics["logprob_current"]).all()

    def excluded(self, skip_first: bool = False, skip_sinks: bool = False) -> list[int]:
        """Return the positions to leave out of aggregates and colour ranges."""
        skipped = set(self.sinks) if skip_sinks else set()
        if skip_first:
            skipped.add(0)
        return sorted(skipped)

    def aligned_fraction(self, exclude: list[int] | tuple = ()) -> np.ndarray:
        """Return per layer the fraction of output-aligned positions, ``(layers,)``."""
        metrics = self.lens.metrics
        return aligned_fraction(metrics["logprob_current"], metrics["logprob_next"], exclude)

    def median_shift(self, exclude: list[int] | tuple = ()) -> float | None:
        return median_shift(self.shift, exclude)

    def to_json(self) -> dict[str, object]:
        """Serialise as the CLI's ``analyze`` JSON object; NaN becomes null."""
        model = {key: self.model[key] for key in ("num_layers", "hidden_size", "vocab_size")}
        return {
            "model": {"name": self.model["name"], **model, "tied": self.model["tied"]},
            "tokens": self.text.tokens,
            "token_labels": self.text.labels,
            "token_ids": self.text.ids.tolist(),
            "metrics": {name: _grid_json(self.lens.metrics[name]) for name in CONTRACT_METRICS},
            "shift_layer": {
                "per_position": _list_json(self.shift),
                "median": self.median_shift(),
            },
            "perplexity": _float_json(self.perplexity),
            "perplexity_note": self.perplexity_note,
            "sink_positions": self.sinks,
            "attenuation": self.attenuation.to_dict() if self.attenuation else None,
            "warnings": self.warnings,
        }


def analyze_text(
    lm: LoadedModel,
    text: str,
    *,
    max_tokens: int | None = None,
    attenuation: Attenuation | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> Analysis:
    """Tokenize ``text`` and compute the full alignment analysis in one call."""
    return LiveAnalysis(lm, text, max_tokens=max_tokens, chunk_bytes=chunk_bytes).run(attenuation)


@dataclass(frozen=True)
class FinalPrediction:
    """The model's own output (the final layer only): the cheap part of a slider update.

    Attributes:
        nll: ``(positions - 1,)`` negative log-likelihood of each next token.
        perplexity: exp(mean nll); None for a single token; inf when diverged.
        top_ids, top_probs: ``(positions, k)`` top next-token predictions.
    """

    nll: np.ndarray
    perplexity: float | None
    top_ids: np.ndarray
    top_probs: np.ndarray


@torch.inference_mode()
def final_prediction(
    lm: LoadedModel, final_state: torch.Tensor, token_ids: torch.Tensor, top_k: int = TOP_K
) -> FinalPrediction:
    """Decode h_N ``(positions, hidden)`` into per-token NLL, perplexity and top-k."""
    logprobs = torch.log_softmax(lens_logits(lm.adapter, final_state), dim=-1)
    targets = token_ids[1:].to(logprobs.device)
    nll = -logprobs[:-1].gather(1, targets[:, None])[:, 0]
    top_logprobs, top_ids = logprobs.topk(top_k, dim=-1)
    nll_array = nll.double().cpu().numpy()
    return FinalPrediction(
        nll=nll_array,
        perplexity=perplexity(nll_array),
        top_ids=top_ids.cpu().numpy(),
        top_probs=top_logprobs.exp().double().cpu().numpy(),
    )


class LiveAnalysis:
    """Keeps one text's unmodified stream so interventions recompute only blocks L..N.

    A change of alpha, or of L to any block, reruns blocks L..N from the stored
    h_{L-1} and decodes only lens rows L..N; rows 0..L-1 are reused.
    """

    def __init__(
        self,
        lm: LoadedModel,
        text: str,
        *,
        max_tokens: int | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> None:
        limit = lm.max_context if max_tokens is None else min(max_tokens, lm.max_context)
        self.lm = lm
        self.chunk_bytes = chunk_bytes
        self.text = tokenize(lm.tokenizer, text, limit, lm.max_context)
        self.stream: Stream = capture_stream(lm, self.text.ids)
        self.baseline = self._finish(
            self.stream,
            compute_lens(lm.adapter, self.stream.resid, self.text.ids, chunk_bytes=chunk_bytes),
            None,
        )

    def run(self, attenuation: Attenuation | None) -> Analysis:
        """Return the analysis under ``attenuation`` (None or alpha = 1: the baseline)."""
        if attenuation is None or attenuation.is_identity:
            if attenuation is not None:
                attenuation.validate(self.lm.adapter.num_layers)
            return self.baseline if attenuation is None else _with(self.baseline, attenuation)

        attenuation.validate(self.lm.adapter.num_layers)
        start = attenuation.layer
        stream = recompute_from(self.lm, self.stream, start, attenuation)
        tail = compute_lens(
            self.lm.adapter, stream.resid[start:], self.text.ids, chunk_bytes=self.chunk_bytes
        )
        return self._finish(stream, _splice(self.baseline.lens, tail, start), attenuation)

    def final(self, attenuation: Attenuation | None) -> FinalPrediction:
        """Return only the final-layer predictions under ``attenuation``.

        This reruns blocks L..N but decodes a single lens row per position,
        so it is what a slider should call first.
        """
        if attenuation is None or attenuation.is_identity:
            # The baseline's own numbers, so alpha = 1 reports exactly what analyze does.
            if attenuation is not None:
                attenuation.validate(self.lm.adapter.num_layers)
            base = self.baseline
            return FinalPrediction(
                nll=base.nll,
                perplexity=base.perplexity,
                top_ids=base.lens.top_ids[-1],
                top_probs=base.lens.top_probs[-1],
            )
        attenuation.validate(self.lm.adapter.num_layers)
        stream = recompute_from(self.lm, self.stream, attenuation.layer, attenuation)
        return final_prediction(self.lm, stream.resid[-1], self.text.ids)

    def _finish(
        self, stream: Stream, lens: LensResult, attenuation: Attenuation | None
    ) -> Analysis:
        metrics = lens.metrics
        nll = token_nll(lens)
        return Analysis(
            model={**self.lm.facts()},
            text=self.text,
            lens=lens,
            shift=shift_layers(metrics["logprob_current"], metrics["logprob_next"]),
            sinks=sink_positions(lens.resid_norm),
            nll=nll,
            perplexity=perplexity(nll),
            attenuation=attenuation,
            warnings=list(self.text.warnings),
        )


def _with(analysis: Analysis, attenuation: Attenuation) -> Analysis:
    copy = Analysis(**{**analysis.__dict__})
    copy.attenuation = attenuation
    return copy


def _splice(head: LensResult, tail: LensResult, start: int) -> LensResult:
    """Take layers 0..start-1 from ``head`` and layers start..N from ``tail``."""
    return LensResult(
        metrics={
            name: np.concatenate([head.metrics[name][:start], tail.metrics[name]])
            for name in head.metrics
        },
        top_ids=np.concatenate([head.top_ids[:start], tail.top_ids]),
        top_probs=np.concatenate([head.top_probs[:start], tail.top_probs]),
        resid_norm=np.concatenate([head.resid_norm[:start], tail.resid_norm]),
    )


def _float_json(value: float | None) -> float | None:
    if value is None or math.isnan(value):
        return None
    if math.isinf(value):
        return None
    return float(value)


def _list_json(values: np.ndarray) -> list[float | int | None]:
    result: list[float | int | None] = []
    for value in values.tolist():
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            result.append(None)
        elif float(value).is_integer():
            result.append(int(value))
        else:
            result.append(float(value))
    return result


def _grid_json(grid: np.ndarray) -> list[list[float | int | None]]:
    return [_list_json(row) for row in grid]


def top_predictions(
    analysis: Analysis, tokenizer, layer: int = -1
) -> list[list[tuple[str, float]]]:
    """Return the top-k lens predictions per position at ``layer`` as (label, probability)."""
    from rshift.tokens import token_labels

    ids = analysis.lens.top_ids[layer]
    probs = analysis.lens.top_probs[layer]
    unique = sorted({int(i) for i in ids.ravel()})
    labels = dict(zip(unique, (token_labels(tokenizer, [i])[0] for i in unique), strict=True))
    return [
        [(labels[int(i)], float(p)) for i, p in zip(row_ids, row_probs, strict=True)]
        for row_ids, row_probs in zip(ids, probs, strict=True)
    ]
