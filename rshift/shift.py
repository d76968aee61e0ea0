"""Shift-layer localisation, attention sinks, and aggregation over prompts.

The shift layer of position t is the smallest layer l such that
logprob_next > logprob_current at l and at every deeper layer. It is
undefined (NaN) when that never happens and at the last position.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SINK_NORM_RATIO = 4.0
DEPTH_GRID = np.linspace(0.0, 1.0, 21)


def shift_layers(logprob_current: np.ndarray, logprob_next: np.ndarray) -> np.ndarray:
    """Return the shift layer per position, ``(positions,)`` float with NaN where undefined.

    Args:
        logprob_current: ``(layers, positions)``.
        logprob_next: ``(layers, positions)``, NaN at the last position.
    """
    aligned = output_aligned(logprob_current, logprob_next)
    positions = aligned.shape[1]
    result = np.full(positions, np.nan)
    # Walk from the deepest layer up while the condition keeps holding.
    suffix_holds = np.flip(np.logical_and.accumulate(np.flip(aligned, axis=0), axis=0), axis=0)
    # The last position has no next token, whatever the caller passed there.
    for t in range(positions - 1):
        holding = np.flatnonzero(suffix_holds[:, t])
        if holding.size:
            result[t] = holding[0]
    return result


def output_aligned(logprob_current: np.ndarray, logprob_next: np.ndarray) -> np.ndarray:
    """Return a ``(layers, positions)`` bool grid: does the lens prefer x[t+1] over x[t]?"""
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(logprob_next, nan=-np.inf) > logprob_current


def aligned_fraction(
    logprob_current: np.ndarray, logprob_next: np.ndarray, exclude: Sequence[int] = ()
) -> np.ndarray:
    """Return per layer the fraction of positions that are output-aligned, ``(layers,)``.

    The last position has no next token and is never counted; ``exclude``
    leaves out further positions (the first token, attention sinks).
    """
    aligned = output_aligned(logprob_current, logprob_next)
    keep = np.ones(aligned.shape[1], dtype=bool)
    keep[-1] = False
    keep[list(exclude)] = False
    if not keep.any():
        return np.full(aligned.shape[0], np.nan)
    return aligned[:, keep].mean(axis=1)


def median_shift(shift: np.ndarray, exclude: Sequence[int] = ()) -> float | None:
    """Return the median shift layer over positions where it is defined, or None."""
    keep = np.ones(shift.shape[0], dtype=bool)
    keep[list(exclude)] = False
    values = shift[keep]
    values = values[~np.isnan(values)]
    return float(np.median(values)) if values.size else None


def sink_positions(resid_norm: np.ndarray, ratio: float = SINK_NORM_RATIO) -> list[int]:
    """Find attention-sink positions: the first token, and norm outliers.

    A position is an outlier when its median residual norm over blocks 1..N is
    more than ``ratio`` times the median of that value over all positions.
    Such states dominate similarity maps and colour scales.

    Args:
        resid_norm: ``(layers, positions)`` residual norms.
    """
    deep = resid_norm[1:] if resid_norm.shape[0] > 1 else resid_norm
    typical = np.median(deep, axis=0)
    reference = np.median(typical)
    outliers = np.flatnonzero(typical > ratio * reference) if reference > 0 else np.array([])
    return sorted({0, *(int(t) for t in outliers)})


@dataclass(frozen=True)
class CorpusAggregate:
    """The shift over many prompts, in relative depth (layer / N).

    Attributes:
        depth: ``(points,)`` relative depth grid in [0, 1].
        mean_fraction: ``(points,)`` mean fraction of output-aligned positions.
        ci_low, ci_high: ``(points,)`` 95% bootstrap interval of that mean.
        relative_shift: relative shift depth of every position of every prompt.
        prompts: number of prompts aggregated.
    """

    depth: np.ndarray
    mean_fraction: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    relative_shift: np.ndarray
    prompts: int

    def median_relative_shift(self) -> float | None:
        values = self.relative_shift[~np.isnan(self.relative_shift)]
        return float(np.median(values)) if values.size else None

    def to_dict(self) -> dict[str, object]:
        return {
            "prompts": self.prompts,
            "depth": self.depth.tolist(),
            "mean_fraction": _nullable(self.mean_fraction),
            "ci_low": _nullable(self.ci_low),
            "ci_high": _nullable(self.ci_high),
            "median_relative_shift": self.median_relative_shift(),
        }


def aggregate_corpus(
    fractions: Sequence[np.ndarray],
    shifts: Sequence[np.ndarray],
    *,
    depth: np.ndarray = DEPTH_GRID,
    resamples: int = 1000,
    seed: int = 0,
) -> CorpusAggregate:
    """Aggregate per-prompt results onto a shared relative-depth grid.

    Args:
        fractions: per prompt, the output-aligned fraction per layer ``(N + 1,)``.
            Prompts may come from models of different depth.
        shifts: per prompt, shift layers per position ``(positions,)``.
    """
    if not fractions:
        raise ValueError("Nothing to aggregate: no prompts were analysed.")
    curves = np.stack([_on_grid(fraction, depth) for fraction in fractions])
    relative = np.concatenate(
        [shift / (fraction.shape[0] - 1) for shift, fraction in zip(shifts, fractions, strict=True)]
    )

    mean = np.nanmean(curves, axis=0)
    low, high = _bootstrap_interval(curves, resamples, seed)
    return CorpusAggregate(depth, mean, low, high, relative, len(fractions))


def _on_grid(fraction: np.ndarray, depth: np.ndarray) -> np.ndarray:
    layers = np.arange(fraction.shape[0]) / (fraction.shape[0] - 1)
    if np.isnan(fraction).all():
        return np.full(depth.shape, np.nan)
    return np.interp(depth, layers, fraction)


def _bootstrap_interval(curves: np.ndarray, resamples: int, seed: int):
    """Return the 2.5% and 97.5% percentiles of the bootstrap mean per grid point."""
    valid = curves[~np.isnan(curves).any(axis=1)]
    if valid.shape[0] < 2:
        single = valid[0] if valid.shape[0] else np.full(curves.shape[1], np.nan)
        return single.copy(), single.copy()
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, valid.shape[0], size=(resamples, valid.shape[0]))
    means = valid[picks].mean(axis=1)
    return np.percentile(means, 2.5, axis=0), np.percentile(means, 97.5, axis=0)


def _nullable(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in values]
