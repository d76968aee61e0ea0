"""Analyse many prompts and aggregate the shift over them."""

from __future__ import annotations

import csv
import io
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rshift.analysis import LiveAnalysis
from rshift.attenuation import Attenuation
from rshift.intervention import is_cancelled
from rshift.models import LoadedModel, ProgressCallback
from rshift.shift import CorpusAggregate, aggregate_corpus
from rshift.tokens import EmptyTextError

logger = logging.getLogger(__name__)

SUMMARY_FIELDS = (
    "index",
    "prompt",
    "tokens",
    "dropped_tokens",
    "median_shift_layer",
    "median_relative_shift",
    "perplexity",
    "perplexity_attenuated",
)


@dataclass
class BatchResult:
    """Per-prompt summaries and the corpus aggregate.

    Attributes:
        rows: one dict per analysed prompt with the keys of ``SUMMARY_FIELDS``.
        aggregate: the corpus aggregate in relative depth, or None if nothing was analysed.
        skipped: (index, reason) for prompts that could not be analysed.
        cancelled: whether the caller stopped the batch early.
    """

    rows: list[dict[str, object]]
    aggregate: CorpusAggregate | None
    skipped: list[tuple[int, str]]
    num_layers: int
    attenuation: Attenuation | None = None
    cancelled: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "prompts": self.rows,
            "skipped": [{"index": i, "reason": reason} for i, reason in self.skipped],
            "aggregate": self.aggregate.to_dict() if self.aggregate else None,
            "num_layers": self.num_layers,
            "attenuation": self.attenuation.to_dict() if self.attenuation else None,
            "cancelled": self.cancelled,
        }

    def summary_csv(self) -> str:
        return _csv(SUMMARY_FIELDS, self.rows)

    def aggregate_csv(self) -> str:
        if self.aggregate is None:
            return _csv(("depth", "mean_fraction", "ci_low", "ci_high"), [])
        data = self.aggregate.to_dict()
        rows = [
            {"depth": d, "mean_fraction": m, "ci_low": lo, "ci_high": hi}
            for d, m, lo, hi in zip(
                data["depth"], data["mean_fraction"], data["ci_low"], data["ci_high"], strict=True
            )
        ]
        return _csv(("depth", "mean_fraction", "ci_low", "ci_high"), rows)


def analyze_prompts(
    lm: LoadedModel,
    prompts: Sequence[str],
    *,
    max_tokens: int | None = None,
    attenuation: Attenuation | None = None,
    exclude_first: bool = True,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | Callable[[], bool] | None = None,
) -> BatchResult:
    """Analyse each prompt, then aggregate the output-aligned fraction by relative depth.

    ``exclude_first`` leaves the first token out of each prompt's fraction,
    because as an attention sink it behaves unlike other positions.
    """
    rows: list[dict[str, object]] = []
    fractions: list[np.ndarray] = []
    shifts: list[np.ndarray] = []
    skipped: list[tuple[int, str]] = []
    num_layers = lm.adapter.num_layers
    cancelled = False

    for index, prompt in enumerate(prompts):
        if is_cancelled(cancel):
            cancelled = True
            break
        try:
            live = LiveAnalysis(lm, prompt, max_tokens=max_tokens)
        except EmptyTextError as error:
            skipped.append((index, str(error)))
            continue

        analysis = live.baseline
        exclude = [0] if exclude_first and len(live.text) > 1 else []
        attenuated = live.final(attenuation).perplexity if attenuation else None
        median = analysis.median_shift(exclude)
        rows.append(
            {
                "index": index,
                "prompt": prompt if len(prompt) <= 120 else prompt[:117] + "...",
                "tokens": len(live.text),
                "dropped_tokens": live.text.dropped,
                "median_shift_layer": median,
                "median_relative_shift": None if median is None else median / num_layers,
                "perplexity": analysis.perplexity,
                "perplexity_attenuated": attenuated,
            }
        )
        fractions.append(analysis.aligned_fraction(exclude))
        keep = np.ones(len(live.text), dtype=bool)
        keep[exclude] = False
        shifts.append(analysis.shift[keep])
        if progress:
            progress((index + 1) / len(prompts), f"prompt {index + 1} of {len(prompts)}")

    aggregate = aggregate_corpus(fractions, shifts) if fractions else None
    return BatchResult(rows, aggregate, skipped, num_layers, attenuation, cancelled)


def _csv(fields: Sequence[str], rows: list[dict[str, object]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row.get(key) is None else row[key] for key in fields})
    return buffer.getvalue()
