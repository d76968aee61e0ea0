"""Shared pieces of the chart builders: constants, inline data, colour ranges, the heatmap grid."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import altair as alt
import numpy as np
import pandas as pd

FAMILIES = ("logprob", "prob", "rank", "cosine", "projection", "projection_normed")


DEFAULT_PERCENTILES = (1.0, 99.0)


SEQUENTIAL = "viridis"


DIVERGING = "blueorange"


INCREASE, DECREASE, DIVERGED = "#c0392b", "#2e86c1", "#7f7f7f"


TOP_SEPARATOR = " · "


def _metric(analysis, name: str) -> np.ndarray:
    metrics = analysis.lens.metrics
    if name not in metrics:
        raise KeyError(f"Unknown metric {name!r}. Available metrics: {', '.join(sorted(metrics))}.")
    return np.asarray(metrics[name], dtype=float)


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"Unknown metric family {family!r}. Choose one of {', '.join(FAMILIES)}.")


def _inline(frame: pd.DataFrame) -> dict:
    """Return ``frame`` as inline Vega-Lite data, with NaN and inf as null.

    A plain ``{"values": ...}`` dict passes neither Altair's row limit (which
    applies to data frames) nor its per-object schema validation, which takes
    seconds on a heatmap's rows.
    """
    return {"values": json.loads(frame.to_json(orient="records"))}


def clipped_domain(
    values: np.ndarray, percentiles: tuple[float, float] = DEFAULT_PERCENTILES
) -> list[float]:
    """Return ``[low, high]`` at the given percentiles of the finite ``values``."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if not finite.size:
        return [0.0, 1.0]
    low, high = (float(v) for v in np.percentile(finite, percentiles))
    if low == high:
        return [low - 0.5, high + 0.5]
    return [low, high]


def symmetric_domain(
    values: np.ndarray, percentiles: tuple[float, float] = DEFAULT_PERCENTILES
) -> list[float]:
    """Return ``[-m, m]``, m the larger magnitude of the clipped domain of ``values``."""
    finite = np.asarray(values, dtype=float)
    if not np.isfinite(finite).any():
        return [-1.0, 1.0]
    limit = max(abs(v) for v in clipped_domain(finite, percentiles))
    return [-limit, limit]


def _colour_scale(family: str, domain: list[float]) -> alt.Scale:
    # Rank 0 (top-1) is the strongest alignment, and a symlog scale, unlike log, includes 0.
    if family == "rank":
        return alt.Scale(type="symlog", domain=domain, clamp=True, scheme=SEQUENTIAL, reverse=True)
    return alt.Scale(type="linear", domain=domain, clamp=True, scheme=SEQUENTIAL)


def _difference_scale(family: str, domain: list[float]) -> alt.Scale:
    # Rank differences are already on a log10 scale. Reversed for rank so that
    # the same colour always means "favours the next token".
    return alt.Scale(
        type="linear",
        domain=domain,
        domainMid=0,
        clamp=True,
        scheme=DIVERGING,
        reverse=family == "rank",
    )


def _family_of(metric: str) -> str:
    for suffix in ("_current", "_next"):
        if metric.endswith(suffix):
            return metric.removesuffix(suffix)
    return metric


@dataclass(frozen=True)
class Grid:
    """The layer × position frame every heatmap of one text shares."""

    labels: tuple[str, ...]
    layers: int
    width: int
    height: int

    @classmethod
    def of(cls, analysis, width: int | None = None, height: int | None = None) -> Grid:
        layers, positions = analysis.lens.metrics["logprob_current"].shape
        width = width or int(np.clip(positions * 16, 240, 960))
        height = height or int(np.clip(layers * 10, 150, 360))
        return cls(tuple(analysis.text.labels), layers, width, height)

    def x(self) -> alt.X:
        return position_x(self.labels)

    def y(self) -> alt.Y:
        return alt.Y(
            "layer:O",
            scale=alt.Scale(domain=list(range(self.layers - 1, -1, -1))),
            axis=alt.Axis(title="layer (0 = embeddings)", labelOverlap=True),
        )


def position_x(labels: Sequence[str], field: str = "position", title: str = "token") -> alt.X:
    """Return an ordinal x encoding of position indices shown as token labels.

    ``field`` contains indices into ``labels``, so repeated labels stay separate columns.
    """
    lookup = json.dumps(list(labels))
    axis = alt.Axis(
        title=title, labelExpr=f"{lookup}[datum.value]", labelAngle=-90, labelOverlap=True
    )
    return alt.X(f"{field}:O", scale=alt.Scale(domain=list(range(len(labels)))), axis=axis)


def _map(grid: Grid, field: str, title: str, scale: alt.Scale, legend: str, tooltip) -> alt.Chart:
    return (
        alt.Chart(title=title, width=grid.width, height=grid.height)
        .mark_rect()
        .encode(
            x=grid.x(),
            y=grid.y(),
            color=alt.Color(f"{field}:Q", scale=scale, legend=alt.Legend(title=legend)),
            tooltip=tooltip,
        )
    )


def _tooltip(fields: Sequence[tuple[str, str]], number: str) -> list[alt.Tooltip]:
    cells = [
        alt.Tooltip("layer:O", title="layer"),
        alt.Tooltip("position:O", title="position"),
        alt.Tooltip("token:N", title="token"),
    ]
    values = [alt.Tooltip(f"{name}:Q", title=title, format=number) for name, title in fields]
    return [*cells, *values, alt.Tooltip("top5:N", title="lens top-5")]
