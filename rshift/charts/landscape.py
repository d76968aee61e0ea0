"""The perplexity landscape over attenuation layer × strength."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from rshift.charts.base import (
    DIVERGED,
    SEQUENTIAL,
    _inline,
)


def landscape_chart(
    layers: Sequence[int],
    alphas: Sequence[float],
    perplexity_grid: np.ndarray,
    current: tuple[int, float] | None = None,
    *,
    baseline: float | None = None,
) -> alt.LayerChart:
    """Return perplexity over attenuated block × alpha, on a log colour scale.

    Args:
        layers: attenuated blocks (1..N), the grid's rows.
        alphas: strengths, the grid's columns.
        perplexity_grid: ``(len(layers), len(alphas))``. An inf, NaN or None
            marks a diverged setting, shown as a grey "diverged" cell.
        current: (block, alpha) to outline; snapped to the nearest grid cell.
        baseline: the unmodified model's perplexity, shown in the subtitle.
    """
    frame = _landscape_frame(layers, alphas, perplexity_grid)
    alpha_domain = sorted(frame["alpha"].unique().tolist())
    x = alt.X("alpha:O", scale=alt.Scale(domain=alpha_domain), axis=alt.Axis(title="alpha"))
    y = alt.Y(
        "block:O",
        scale=alt.Scale(domain=sorted(frame["block"].unique().tolist(), reverse=True)),
        axis=alt.Axis(title="attenuated block"),
    )
    tooltip = ["block:O", "alpha:O", alt.Tooltip("perplexity_text:N", title="perplexity")]
    base = alt.Chart(_inline(frame), title=_landscape_title(frame, baseline)).encode(
        x=x, y=y, tooltip=tooltip
    )
    finite = (
        base.transform_filter(alt.datum.status == "finite")
        .mark_rect()
        .encode(
            color=alt.Color(
                "perplexity:Q", scale=alt.Scale(type="log", scheme=SEQUENTIAL), title="perplexity"
            )
        )
    )
    failed = base.transform_filter(alt.datum.status == "diverged")
    charts = [finite, failed.mark_rect(color=DIVERGED), failed.mark_text(text="✕", color="white")]
    if current is not None:
        charts.append(_current_cell(frame, current, x, y))
    return alt.layer(*charts)


def _landscape_frame(layers, alphas, perplexity_grid) -> pd.DataFrame:
    grid = np.array(perplexity_grid, dtype=float)  # None becomes NaN
    if grid.shape != (len(layers), len(alphas)):
        raise ValueError(
            f"perplexity_grid has shape {grid.shape}; expected ({len(layers)}, {len(alphas)})."
        )
    finite = np.isfinite(grid) & (grid > 0)
    return pd.DataFrame(
        {
            "block": np.repeat(np.asarray(layers, dtype=int), len(alphas)),
            "alpha": np.tile(np.round(np.asarray(alphas, dtype=float), 6), len(layers)),
            "perplexity": np.where(finite, grid, np.nan).ravel(),
            "perplexity_text": [
                f"{v:.4g}" if ok else "diverged"
                for v, ok in zip(grid.ravel(), finite.ravel(), strict=True)
            ],
            "status": np.where(finite, "finite", "diverged").ravel(),
        }
    )


def _landscape_title(frame: pd.DataFrame, baseline: float | None) -> alt.Title:
    notes = []
    if baseline is not None:
        shown = f"{baseline:.4g}" if np.isfinite(baseline) else "diverged"
        notes.append(f"unmodified model: {shown}")
    if (frame["status"] == "diverged").any():
        notes.append("grey ✕: diverged (the loss is infinite or not a number)")
    return alt.Title("Perplexity under attenuation", subtitle=notes)


def _current_cell(frame: pd.DataFrame, current, x: alt.X, y: alt.Y) -> alt.Chart:
    block, alpha = current
    blocks, alphas = frame["block"].unique(), frame["alpha"].unique()
    cell = pd.DataFrame(
        {
            "block": [int(blocks[np.argmin(np.abs(blocks - block))])],
            "alpha": [float(alphas[np.argmin(np.abs(alphas - alpha))])],
            "label": ["current setting"],
        }
    )
    return (
        alt.Chart(_inline(cell))
        .mark_rect(fillOpacity=0, stroke="black", strokeWidth=3)
        .encode(x=x, y=y, tooltip=alt.Tooltip("label:N", title=" "))
    )
