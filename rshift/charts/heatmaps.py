"""Layer × position heatmaps of the alignment metrics, with top-5 lens tooltips."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from rshift.charts.base import (
    DEFAULT_PERCENTILES,
    TOP_SEPARATOR,
    Grid,
    _check_family,
    _colour_scale,
    _difference_scale,
    _family_of,
    _inline,
    _map,
    _metric,
    _tooltip,
    clipped_domain,
    symmetric_domain,
)


def top_label_map(tokenizer, top_ids: np.ndarray) -> dict[int, str]:
    """Return a readable label for every distinct id in ``top_ids`` (any shape).

    Each id is labelled on its own, so a byte piece shows as hex rather than
    being merged with its neighbour. Cache the result per analysis.
    """
    from rshift.tokens import token_labels

    return {int(i): token_labels(tokenizer, [int(i)])[0] for i in np.unique(top_ids)}


def heatmap_frame(
    analysis,
    metric: str,
    *,
    tokenizer=None,
    top_labels: dict[int, str] | None = None,
    exclude: Sequence[int] = (),
) -> pd.DataFrame:
    """Return one metric as a long frame, one row per (layer, position) cell.

    Columns: ``layer``, ``position``, ``token`` (its label), ``value``,
    ``top5`` (the lens's top-5 tokens with their probabilities at that cell)
    and ``excluded`` (the position is left out of colour ranges).

    Args:
        analysis: an ``Analysis``; ``analysis.lens.metrics[metric]`` is ``(layers, positions)``.
        tokenizer: labels the top-5 ids when ``top_labels`` is not given.
        top_labels: id -> label for every id in ``analysis.lens.top_ids``.
        exclude: positions to flag as excluded.
    """
    frame = _cell_frame(analysis, tokenizer, top_labels, exclude)
    frame["value"] = _metric(analysis, metric).ravel()
    return frame


def alignment_frame(
    analysis,
    family: str,
    *,
    tokenizer=None,
    top_labels: dict[int, str] | None = None,
    exclude: Sequence[int] = (),
) -> pd.DataFrame:
    """Return the ``{family}_current`` / ``_next`` pair as one long frame.

    Columns as in ``heatmap_frame``, with ``current``, ``next`` and
    ``difference`` (next minus current) in place of ``value``.
    """
    _check_family(family)
    frame = _cell_frame(analysis, tokenizer, top_labels, exclude)
    frame["current"] = _metric(analysis, f"{family}_current").ravel()
    frame["next"] = _metric(analysis, f"{family}_next").ravel()
    frame["difference"] = _difference(frame["next"], frame["current"], family)
    return frame


def _difference_title(family: str) -> str:
    return "log10 rank: next − current" if family == "rank" else "next − current"


def _difference(new: pd.Series, old: pd.Series, family: str) -> pd.Series:
    """Return ``new - old``; for ranks, the difference of log10(rank + 1).

    Ranks span 0 to the vocabulary size, so a raw difference is dominated by
    tail tokens. On the log scale a step from rank 0 to 9 weighs as much as
    one from 99 to 999.
    """
    if family == "rank":
        return np.log10(new + 1) - np.log10(old + 1)
    return new - old


def _cell_frame(analysis, tokenizer, top_labels, exclude) -> pd.DataFrame:
    layers, positions = analysis.lens.metrics["logprob_current"].shape
    labels = list(analysis.text.labels)
    excluded = np.isin(np.arange(positions), list(exclude))
    return pd.DataFrame(
        {
            "layer": np.repeat(np.arange(layers), positions),
            "position": np.tile(np.arange(positions), layers),
            "token": np.tile(np.asarray(labels, dtype=object), layers),
            "top5": _top_text(analysis.lens, tokenizer, top_labels).ravel(),
            "excluded": np.tile(excluded, layers),
        }
    )


def _top_text(lens, tokenizer, top_labels) -> np.ndarray:
    """Return ``(layers, positions)`` strings like ``'␣the 0.412 · a 0.101'``."""
    if top_labels is None:
        top_labels = top_label_map(tokenizer, lens.top_ids) if tokenizer is not None else {}
    k = lens.top_ids.shape[-1]
    ids = lens.top_ids.reshape(-1, k).tolist()
    probs = lens.top_probs.reshape(-1, k).tolist()
    text = [
        TOP_SEPARATOR.join(
            f"{top_labels.get(i, f'#{i}')} {p:.3f}" for i, p in zip(row_ids, row_probs, strict=True)
        )
        for row_ids, row_probs in zip(ids, probs, strict=True)
    ]
    return np.asarray(text, dtype=object).reshape(lens.top_ids.shape[:2])


def shift_points(analysis, grid: Grid) -> alt.Chart:
    """Return points at each position's shift layer, to draw over a heatmap."""
    shift = np.asarray(analysis.shift, dtype=float)
    defined = np.flatnonzero(np.isfinite(shift))
    frame = pd.DataFrame(
        {
            "position": defined,
            "layer": shift[defined].astype(int),
            "token": [grid.labels[t] for t in defined],
        }
    )
    return (
        alt.Chart(_inline(frame))
        .mark_point(shape="diamond", filled=True, color="white", stroke="black", strokeWidth=0.6)
        .encode(
            x=grid.x(),
            y=grid.y(),
            tooltip=[
                alt.Tooltip("position:O", title="position"),
                alt.Tooltip("token:N", title="token"),
                alt.Tooltip("layer:O", title="shift layer"),
            ],
        )
    )


def alignment_heatmaps(
    analysis,
    family: str,
    *,
    tokenizer=None,
    top_labels: dict[int, str] | None = None,
    exclude: Sequence[int] = (),
    show_shift: bool = False,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    width: int | None = None,
    height: int | None = None,
) -> alt.VConcatChart:
    """Return input alignment, output alignment and their difference, stacked.

    The first two maps share one colour domain, clipped at ``percentiles`` of
    their values over the positions not in ``exclude``. The difference (next
    minus current) has its own symmetric diverging domain. Rank uses a symlog
    scale, so rank 0 (top-1) is on it.

    Args:
        analysis: an ``Analysis`` with ``(layers, positions)`` metrics.
        family: one of ``FAMILIES``.
        exclude: positions (first token, sinks) left out of the colour ranges.
            They are still drawn, clamped to the range.
        show_shift: draw each position's shift layer over the maps.
    """
    frame = alignment_frame(
        analysis, family, tokenizer=tokenizer, top_labels=top_labels, exclude=exclude
    )
    kept = frame[~frame["excluded"]]
    pair = _colour_scale(family, clipped_domain(kept[["current", "next"]].to_numpy(), percentiles))
    difference = _difference_scale(family, symmetric_domain(kept["difference"], percentiles))

    grid = Grid.of(analysis, width, height)
    number = ".6~g" if family == "rank" else ".4g"
    tooltip = _tooltip(
        [("current", "current"), ("next", "next"), ("difference", _difference_title(family))],
        number,
    )
    maps = [
        _map(grid, "current", f"Input alignment: {family}_current", pair, family, tooltip),
        _map(grid, "next", f"Output alignment: {family}_next", pair, family, tooltip),
        _map(
            grid,
            "difference",
            f"Difference: {_difference_title(family)}",
            difference,
            _difference_title(family),
            tooltip,
        ),
    ]
    if show_shift:
        maps = [alt.layer(chart, shift_points(analysis, grid)) for chart in maps]
    return alt.vconcat(*maps, data=_inline(frame)).resolve_scale(color="independent")


def difference_heatmap(
    base,
    other,
    metric: str,
    *,
    tokenizer=None,
    top_labels: dict[int, str] | None = None,
    exclude: Sequence[int] = (),
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    width: int | None = None,
    height: int | None = None,
) -> alt.Chart:
    """Return ``other`` minus ``base`` for one metric (attenuated minus baseline).

    Both analyses must cover the same text. The top-5 tooltip shows ``other``'s
    lens. Cells that are not finite (a diverged intervention) are left blank.
    """
    _check_same_text(base, other)
    frame = _cell_frame(other, tokenizer, top_labels, exclude)
    frame["baseline"] = _metric(base, metric).ravel()
    frame["attenuated"] = _metric(other, metric).ravel()
    family = _family_of(metric)
    frame["difference"] = _difference(frame["attenuated"], frame["baseline"], family)

    domain = symmetric_domain(frame.loc[~frame["excluded"], "difference"], percentiles)
    fields = [("baseline", "baseline"), ("attenuated", "attenuated"), ("difference", "difference")]
    tooltip = _tooltip(fields, ".6~g" if family == "rank" else ".4g")
    title = alt.Title(f"{metric}: attenuated − baseline", subtitle=_attenuation_note(other, frame))
    grid = Grid.of(other, width, height)
    chart = _map(grid, "difference", "", _difference_scale(family, domain), "difference", tooltip)
    return chart.properties(data=_inline(frame), title=title)


def _check_same_text(base, other) -> None:
    if list(base.text.labels) != list(other.text.labels):
        raise ValueError(
            "The two analyses cover different texts. Compare two analyses of the same text."
        )


def _attenuation_note(analysis, frame: pd.DataFrame) -> list[str]:
    notes = []
    attenuation = getattr(analysis, "attenuation", None)
    if attenuation is not None:
        notes.append(
            f"block {attenuation.layer}, alpha {attenuation.alpha:g}, scope {attenuation.scope}"
        )
    diverged = np.isfinite(frame["baseline"]) & ~np.isfinite(frame["attenuated"])
    if diverged.any():
        notes.append("blank cells: not finite under the attenuation (diverged)")
    return notes
