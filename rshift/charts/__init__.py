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

from rshift.charts.base import (
    DECREASE,
    DEFAULT_PERCENTILES,
    DIVERGED,
    DIVERGING,
    FAMILIES,
    INCREASE,
    SEQUENTIAL,
    TOP_SEPARATOR,
    Grid,
    clipped_domain,
    position_x,
    symmetric_domain,
)
from rshift.charts.heatmaps import (
    alignment_frame,
    alignment_heatmaps,
    difference_heatmap,
    heatmap_frame,
    shift_points,
    top_label_map,
)
from rshift.charts.landscape import (
    landscape_chart,
)
from rshift.charts.lines import (
    aligned_fraction_chart,
    corpus_chart,
    gate_chart,
    loss_change_chart,
    loss_curve_chart,
    shift_histogram,
)
from rshift.charts.theme import (
    apply_talk_theme,
    talk_theme,
)

__all__ = [
    "DECREASE",
    "DEFAULT_PERCENTILES",
    "DIVERGED",
    "DIVERGING",
    "FAMILIES",
    "INCREASE",
    "SEQUENTIAL",
    "TOP_SEPARATOR",
    "Grid",
    "aligned_fraction_chart",
    "alignment_frame",
    "alignment_heatmaps",
    "apply_talk_theme",
    "clipped_domain",
    "corpus_chart",
    "difference_heatmap",
    "gate_chart",
    "heatmap_frame",
    "landscape_chart",
    "loss_change_chart",
    "loss_curve_chart",
    "position_x",
    "shift_histogram",
    "shift_points",
    "symmetric_domain",
    "talk_theme",
    "top_label_map",
]
