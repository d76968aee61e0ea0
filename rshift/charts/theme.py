"""The talk theme: large fonts for figures shown on a slide."""

from __future__ import annotations

import altair as alt


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
