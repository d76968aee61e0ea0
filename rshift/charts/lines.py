"""Line, bar and band charts: aligned fraction, loss change, corpus, gates, loss curves."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from rshift.charts.base import (
    DECREASE,
    DIVERGED,
    INCREASE,
    _inline,
    position_x,
)


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


def gate_chart(gates: Sequence[float]) -> alt.LayerChart:
    """Return each block's learned gate value, with the unmodified value 1 marked.

    Args:
        gates: ``(blocks,)`` one gate per block, block 1 first.
    """
    values = np.asarray(gates, dtype=float)
    frame = pd.DataFrame(
        {"block": np.arange(1, values.shape[0] + 1), "gate": values, "unmodified": 1.0}
    )
    # Bars grow from 1, the unmodified value, so gates of 0.95 and 1.05 point apart.
    bars = (
        alt.Chart(_inline(frame), title="Learned residual gates")
        .mark_bar()
        .encode(
            x=alt.X("block:O", title="block"),
            y=alt.Y("gate:Q", title="gate (1 = unmodified)", scale=alt.Scale(zero=False)),
            y2="unmodified:Q",
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
            x=alt.X("step:Q", title="step", axis=alt.Axis(format="d", tickMinStep=1)),
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
