"""Altair chart builders: data in, chart out.

Every builder takes an ``Analysis``, numpy arrays, pandas frames or plain
values and returns an Altair chart. Nothing here runs a model. Data travels
inline as plain ``{"values": [...]}`` dicts, so a chart of any size converts
without hitting Altair's row limit and without touching its global data
transformer.

Heatmaps put layers on the y-axis (0 = embeddings, at the bottom) and
positions on the x-axis. x is the position index, so a token that repeats
keeps a column of its own. The axis shows token labels through a label
expression that looks the index up.
"""

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


# ---------------------------------------------------------------- frames


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
    frame["difference"] = frame["next"] - frame["current"]
    return frame


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


# ---------------------------------------------------------------- colour ranges


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
    # Reversed for rank so that the same colour always means "favours the next token".
    kind = "symlog" if family == "rank" else "linear"
    return alt.Scale(
        type=kind,
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


# ---------------------------------------------------------------- heatmap grid


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


# ---------------------------------------------------------------- alignment maps


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
    number = "d" if family == "rank" else ".4g"
    tooltip = _tooltip(
        [("current", "current"), ("next", "next"), ("difference", "next − current")], number
    )
    maps = [
        _map(grid, "current", f"Input alignment: {family}_current", pair, family, tooltip),
        _map(grid, "next", f"Output alignment: {family}_next", pair, family, tooltip),
        _map(
            grid, "difference", "Difference: next − current", difference, "next − current", tooltip
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
    frame["difference"] = frame["attenuated"] - frame["baseline"]

    domain = symmetric_domain(frame.loc[~frame["excluded"], "difference"], percentiles)
    family = _family_of(metric)
    fields = [("baseline", "baseline"), ("attenuated", "attenuated"), ("difference", "difference")]
    tooltip = _tooltip(fields, "d" if family == "rank" else ".4g")
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


# ---------------------------------------------------------------- per-layer and per-token lines


def aligned_fraction_chart(analysis, exclude: Sequence[int] = ()) -> alt.LayerChart:
    """Return the fraction of output-aligned positions per layer, with the median shift.

    Args:
        analysis: an ``Analysis``, whose ``aligned_fraction`` returns ``(layers,)``.
        exclude: positions left out of the fraction and the median.
    """
    fraction = analysis.aligned_fraction(list(exclude))
    frame = pd.DataFrame({"layer": np.arange(fraction.shape[0]), "fraction": fraction})
    x = alt.X(
        "layer:Q",
        scale=alt.Scale(domain=[0, fraction.shape[0] - 1], nice=False),
        axis=alt.Axis(title="layer (0 = embeddings)", tickMinStep=1),
    )
    line = (
        alt.Chart(_inline(frame), title="Output-aligned positions per layer")
        .mark_line(point=True)
        .encode(
            x=x,
            y=alt.Y("fraction:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
            tooltip=["layer:Q", alt.Tooltip("fraction:Q", format=".1%")],
        )
    )
    median = analysis.median_shift(list(exclude))
    if median is None:
        return alt.layer(line)
    return alt.layer(line, _vertical_rule(median, "median shift layer"))


def _vertical_rule(value: float, label: str) -> alt.Chart:
    frame = pd.DataFrame({"at": [value], "label": [f"{label}: {value:g}"]})
    base = alt.Chart(_inline(frame)).encode(x="at:Q", tooltip=alt.Tooltip("label:N", title=" "))
    rule = base.mark_rule(strokeDash=[4, 3], color="black")
    text = base.mark_text(align="left", dx=4, dy=-4, baseline="bottom").encode(
        y=alt.value(0), text="label:N"
    )
    return alt.layer(rule, text)


def loss_change_chart(
    base_nll: np.ndarray, other_nll: np.ndarray, labels: Sequence[str], *, width: int | None = None
) -> alt.LayerChart:
    """Return the per-token loss change (other minus base) along the text.

    Args:
        base_nll, other_nll: ``(positions - 1,)`` loss of predicting token t+1 at t.
        labels: token labels of the text, ``(positions,)``. Each bar sits on the
            token being predicted. Labels of the predicted tokens only,
            ``(positions - 1,)``, are accepted too.

    A loss that is not finite is drawn as a grey "diverged" marker, never a number.
    """
    base, other = np.asarray(base_nll, dtype=float), np.asarray(other_nll, dtype=float)
    targets = _target_labels(labels, base.shape[0])
    change = other - base
    frame = pd.DataFrame(
        {
            "index": np.arange(base.shape[0]),
            "token": targets,
            "change": change,
            "baseline": base,
            "attenuated": other,
            "status": np.where(np.isfinite(change), "finite", "diverged"),
        }
    )
    width = width or int(np.clip(base.shape[0] * 16, 240, 960))
    base_chart = alt.Chart(_inline(frame), width=width, title="Loss change per token")
    x = position_x(targets, field="index", title="predicted token")
    tooltip = [
        alt.Tooltip("token:N", title="predicted token"),
        alt.Tooltip("baseline:Q", format=".3f"),
        alt.Tooltip("attenuated:Q", format=".3f"),
        alt.Tooltip("change:Q", format="+.3f"),
        alt.Tooltip("status:N"),
    ]
    colour = alt.when(alt.datum.change > 0).then(alt.value(INCREASE)).otherwise(alt.value(DECREASE))
    bars = base_chart.mark_bar().encode(
        x=x, y=alt.Y("change:Q", title="Δ loss (nats)"), color=colour, tooltip=tooltip
    )
    diverged = (
        base_chart.transform_filter(alt.datum.status == "diverged")
        .mark_point(shape="triangle-up", filled=True, color=DIVERGED, size=80)
        .encode(x=x, y=alt.datum(0), tooltip=tooltip)
    )
    return alt.layer(bars, diverged)


def _target_labels(labels: Sequence[str], count: int) -> list[str]:
    labels = list(labels)
    if len(labels) == count + 1:
        return labels[1:]
    if len(labels) == count:
        return labels
    raise ValueError(
        f"Invalid labels: expected {count + 1} token labels (or {count}), got {len(labels)}."
    )


# ---------------------------------------------------------------- attenuation landscape


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


# ---------------------------------------------------------------- corpus


def corpus_chart(aggregate) -> alt.LayerChart:
    """Return the mean output-aligned fraction vs relative depth with its 95% band.

    Args:
        aggregate: a ``CorpusAggregate`` with ``(points,)`` arrays.
    """
    frame = pd.DataFrame(
        {
            "depth": aggregate.depth,
            "mean": aggregate.mean_fraction,
            "low": aggregate.ci_low,
            "high": aggregate.ci_high,
        }
    )
    title = f"Output-aligned fraction over {aggregate.prompts} prompts"
    base = alt.Chart(_inline(frame), title=title).encode(
        x=alt.X("depth:Q", scale=alt.Scale(domain=[0, 1]), title="relative depth (layer / N)")
    )
    y = alt.Y("low:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"), title="fraction")
    band = base.mark_area(opacity=0.3).encode(y=y, y2="high:Q")
    line = base.mark_line(point=True).encode(
        y="mean:Q",
        tooltip=[
            alt.Tooltip("depth:Q", format=".2f"),
            alt.Tooltip("mean:Q", format=".1%"),
            alt.Tooltip("low:Q", format=".1%", title="95% low"),
            alt.Tooltip("high:Q", format=".1%", title="95% high"),
        ],
    )
    median = aggregate.median_relative_shift()
    if median is None:
        return alt.layer(band, line)
    return alt.layer(band, line, _vertical_rule(round(median, 3), "median shift depth"))


def shift_histogram(relative_shift: np.ndarray, bins: int = 20) -> alt.Chart:
    """Return a histogram of relative shift depths, binned here so any count renders.

    Args:
        relative_shift: ``(positions,)`` shift layer / N, NaN where undefined.
    """
    values = np.asarray(relative_shift, dtype=float)
    defined = values[np.isfinite(values)]
    counts, edges = np.histogram(defined, bins=bins, range=(0.0, 1.0))
    frame = pd.DataFrame({"start": edges[:-1], "end": edges[1:], "count": counts})
    note = f"{defined.size} positions with a shift, {values.size - defined.size} without"
    return (
        alt.Chart(_inline(frame), title=alt.Title("Shift depth", subtitle=note))
        .mark_bar()
        .encode(
            x=alt.X("start:Q", scale=alt.Scale(domain=[0, 1]), title="relative shift depth"),
            x2="end:Q",
            y=alt.Y("count:Q", title="positions"),
            y2=alt.datum(0),
            tooltip=[
                alt.Tooltip("start:Q", format=".2f"),
                alt.Tooltip("end:Q", format=".2f"),
                "count:Q",
            ],
        )
    )


# ---------------------------------------------------------------- gates and training


def gate_chart(gates: Sequence[float]) -> alt.LayerChart:
    """Return each block's learned gate value, with the unmodified value 1 marked.

    Args:
        gates: ``(blocks,)`` one gate per block, block 1 first.
    """
    values = np.asarray(gates, dtype=float)
    frame = pd.DataFrame({"block": np.arange(1, values.shape[0] + 1), "gate": values})
    bars = (
        alt.Chart(_inline(frame), title="Learned residual gates")
        .mark_bar()
        .encode(
            x=alt.X("block:O", title="block"),
            y=alt.Y("gate:Q", title="gate (1 = unmodified)"),
            tooltip=["block:O", alt.Tooltip("gate:Q", format=".4f")],
        )
    )
    one = alt.Chart(_inline(pd.DataFrame({"gate": [1.0]}))).mark_rule(strokeDash=[4, 3])
    return alt.layer(bars, one.encode(y="gate:Q"))


def loss_curve_chart(
    steps: Sequence[int],
    losses: Sequence[float],
    val: tuple[Sequence[int], Sequence[float]] | None = None,
) -> alt.Chart:
    """Return training loss per step, with validation loss when given.

    Args:
        steps, losses: ``(points,)`` training steps and their loss.
        val: ``(steps, losses)`` of the validation evaluations, or None.
    """
    parts = [_series(steps, losses, "train")]
    if val is not None:
        parts.append(_series(*val, "validation"))
    frame = pd.concat(parts, ignore_index=True)
    return (
        alt.Chart(_inline(frame), title="Loss")
        .mark_line(point=val is not None)
        .encode(
            x=alt.X("step:Q", title="step"),
            y=alt.Y("loss:Q", scale=alt.Scale(zero=False), title="loss (nats)"),
            color=alt.Color("split:N", title=None),
            tooltip=["split:N", "step:Q", alt.Tooltip("loss:Q", format=".4f")],
        )
    )


def _series(steps, losses, split: str) -> pd.DataFrame:
    steps, losses = np.asarray(steps), np.asarray(losses, dtype=float)
    if steps.shape != losses.shape:
        raise ValueError(
            f"Invalid {split} loss curve: {steps.shape[0]} steps but {losses.shape[0]} losses. "
            "Give one loss per step."
        )
    return pd.DataFrame({"step": steps, "loss": losses, "split": split})


# ---------------------------------------------------------------- talk theme


def talk_theme(scale: float = 1.6, font: str | None = None) -> dict:
    """Return an Altair theme (``{"config": ...}``) with fonts and marks scaled for a room.

    Usable with ``alt.theme.register`` or through ``apply_talk_theme``.
    """
    size = {"label": round(11 * scale), "title": round(13 * scale), "head": round(16 * scale)}
    text = {"font": font} if font else {}
    axis = {"labelFontSize": size["label"], "titleFontSize": size["title"], **_fonts(font)}
    return {
        "config": {
            **text,
            "axis": axis,
            "legend": {**axis, "symbolSize": round(100 * scale)},
            "header": {"labelFontSize": size["title"], "titleFontSize": size["head"]},
            "title": {"fontSize": size["head"], "subtitleFontSize": size["label"], **text},
            "text": {"fontSize": size["label"]},
            "line": {"strokeWidth": 2 * scale},
            "point": {"size": round(40 * scale)},
            "rule": {"strokeWidth": 1.5 * scale},
            "view": {"continuousWidth": round(300 * scale), "continuousHeight": round(300 * scale)},
        }
    }


def _fonts(font: str | None) -> dict:
    return {"labelFont": font, "titleFont": font} if font else {}


def apply_talk_theme(chart: alt.TopLevelMixin, scale: float = 1.6) -> alt.TopLevelMixin:
    """Return a copy of a top-level ``chart`` with the talk theme merged into its config."""
    themed = chart.copy(deep=False)
    existing = {} if chart.config is alt.Undefined else chart.config.to_dict()
    themed.config = alt.Config.from_dict(_merge(existing, talk_theme(scale)["config"]))
    return themed


def _merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
