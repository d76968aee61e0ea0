"""Chart builders: fields, scales, colour domains and sizes, read from the Vega-Lite spec."""

from __future__ import annotations

import json
import subprocess
import sys

import altair as alt
import numpy as np
import pytest
import torch

from rshift import charts
from rshift.analysis import Analysis
from rshift.attenuation import Attenuation
from rshift.export import to_png
from rshift.lens import LensResult
from rshift.shift import aggregate_corpus, shift_layers
from rshift.tokens import TokenizedText, token_labels

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LABELS = ["The", "␣cat", "␣sat", "␣on", "␣the", "␣cat"]


def fake_analysis(layers=4, labels=LABELS, seed=0, attenuation=None) -> Analysis:
    """Return an Analysis of random metrics, integer ranks from 0 and NaN at the last next."""
    rng = np.random.default_rng(seed)
    positions = len(labels)
    metrics = {}
    for family in charts.FAMILIES:
        for side in ("current", "next"):
            grid = rng.normal(size=(layers, positions))
            if family == "rank":
                grid = rng.integers(0, 1000, size=(layers, positions)).astype(float)
                grid[0, 0] = 0.0
            metrics[f"{family}_{side}"] = grid
        metrics[f"{family}_next"][:, -1] = np.nan
    probs = np.sort(rng.random((layers, positions, 5)), axis=-1)[..., ::-1]
    lens = LensResult(metrics, rng.integers(0, 9, (layers, positions, 5)), probs, np.ones((2, 2)))
    text = TokenizedText(ids=torch.arange(positions), tokens=list(labels), labels=list(labels))
    return Analysis(
        model={"num_layers": layers - 1},
        text=text,
        lens=lens,
        shift=shift_layers(metrics["logprob_current"], metrics["logprob_next"]),
        sinks=[0],
        nll=rng.random(positions - 1),
        perplexity=2.0,
        attenuation=attenuation,
    )


def maps(spec: dict) -> list[dict]:
    """Return the heatmap unit specs of a stacked chart, shift overlays left out."""
    return [entry["layer"][0] if "layer" in entry else entry for entry in spec["vconcat"]]


def colour_scale(unit: dict) -> dict:
    return unit["encoding"]["color"]["scale"]


def rows(spec: dict) -> list[dict]:
    """Return the values of the chart's only dataset."""
    (values,) = spec["datasets"].values()
    return values


def layer_rows(spec: dict, index: int) -> list[dict]:
    """Return the values of the dataset that layer ``index`` reads."""
    return spec["datasets"][spec["layer"][index]["data"]["name"]]


def kept_values(analysis, names, exclude=()) -> np.ndarray:
    keep = np.ones(len(analysis.text.labels), dtype=bool)
    keep[list(exclude)] = False
    values = np.concatenate([analysis.lens.metrics[name][:, keep].ravel() for name in names])
    return values[np.isfinite(values)]


# ---------------------------------------------------------------- frames


def test_frame_shape():
    frame = charts.heatmap_frame(fake_analysis(), "logprob_current")
    assert len(frame) == 4 * len(LABELS)
    assert set(frame.columns) == {"layer", "position", "token", "value", "top5", "excluded"}


def test_frame_cells():
    analysis = fake_analysis()
    frame = charts.heatmap_frame(analysis, "cosine_next").set_index(["layer", "position"])
    assert frame.loc[(2, 3), "value"] == analysis.lens.metrics["cosine_next"][2, 3]
    assert frame.loc[(2, 5), "token"] == "␣cat"


def test_frame_top5_labels():
    analysis = fake_analysis()
    labels = {i: f"tok{i}" for i in range(9)}
    frame = charts.heatmap_frame(analysis, "prob_next", top_labels=labels)
    first = frame.loc[0, "top5"].split(charts.TOP_SEPARATOR)
    best = int(analysis.lens.top_ids[0, 0, 0])
    assert len(first) == 5
    assert first[0] == f"tok{best} {analysis.lens.top_probs[0, 0, 0]:.3f}"


def test_frame_top5_ids():
    frame = charts.heatmap_frame(fake_analysis(), "prob_next")
    assert frame.loc[0, "top5"].startswith("#")


def test_frame_excluded():
    frame = charts.heatmap_frame(fake_analysis(), "logprob_current", exclude=[0, 2])
    assert set(frame.loc[frame["excluded"], "position"]) == {0, 2}


def test_unknown_metric():
    with pytest.raises(KeyError, match="Available metrics"):
        charts.heatmap_frame(fake_analysis(), "nonsense")


def test_unknown_family():
    with pytest.raises(ValueError, match="family"):
        charts.alignment_heatmaps(fake_analysis(), "entropy")


def test_top_label_map(tiny_models):
    tokenizer = tiny_models["llama_tied"].tokenizer
    ids = np.array([[5, 40], [40, 300]])
    labels = charts.top_label_map(tokenizer, ids)
    assert set(labels) == {5, 40, 300}
    assert labels[300] == token_labels(tokenizer, [300])[0]


def test_tokenizer_labels(tiny_models):
    lm = tiny_models["llama_tied"]
    analysis = fake_analysis()
    by_tokenizer = charts.heatmap_frame(analysis, "logprob_next", tokenizer=lm.tokenizer)
    labels = charts.top_label_map(lm.tokenizer, analysis.lens.top_ids)
    by_map = charts.heatmap_frame(analysis, "logprob_next", top_labels=labels)
    assert by_tokenizer["top5"].tolist() == by_map["top5"].tolist()


# ---------------------------------------------------------------- alignment maps


@pytest.mark.parametrize("family", charts.FAMILIES)
def test_families(family):
    spec = charts.alignment_heatmaps(fake_analysis(), family).to_dict()
    titles = [unit["title"] for unit in maps(spec)]
    assert titles[0].endswith(f"{family}_current")
    assert titles[1].endswith(f"{family}_next")
    assert len(titles) == 3


def test_pair_shares_domain():
    units = maps(charts.alignment_heatmaps(fake_analysis(), "logprob").to_dict())
    assert colour_scale(units[0])["domain"] == colour_scale(units[1])["domain"]


def test_pair_clipped():
    analysis = fake_analysis()
    units = maps(charts.alignment_heatmaps(analysis, "cosine").to_dict())
    values = kept_values(analysis, ["cosine_current", "cosine_next"])
    assert colour_scale(units[0])["domain"] == pytest.approx(np.percentile(values, [1, 99]))
    assert colour_scale(units[0])["clamp"] is True


def test_pair_percentiles():
    analysis = fake_analysis()
    chart = charts.alignment_heatmaps(analysis, "prob", percentiles=(5, 95))
    values = kept_values(analysis, ["prob_current", "prob_next"])
    domain = colour_scale(maps(chart.to_dict())[0])["domain"]
    assert domain == pytest.approx(np.percentile(values, [5, 95]))


def test_excluded_outlier():
    analysis = fake_analysis()
    analysis.lens.metrics["logprob_current"][:, 0] = 1e6
    with_outlier = maps(charts.alignment_heatmaps(analysis, "logprob").to_dict())
    without = maps(charts.alignment_heatmaps(analysis, "logprob", exclude=[0]).to_dict())
    values = kept_values(analysis, ["logprob_current", "logprob_next"], exclude=[0])
    assert colour_scale(with_outlier[0])["domain"][1] == pytest.approx(1e6)
    assert colour_scale(without[0])["domain"] == pytest.approx(np.percentile(values, [1, 99]))


def test_difference_symmetric():
    analysis = fake_analysis()
    scale = colour_scale(maps(charts.alignment_heatmaps(analysis, "logprob").to_dict())[2])
    metrics = analysis.lens.metrics
    difference = (metrics["logprob_next"] - metrics["logprob_current"]).ravel()
    low, high = np.percentile(difference[np.isfinite(difference)], [1, 99])
    assert scale["domain"] == pytest.approx([-max(-low, high), max(-low, high)])
    assert scale["domainMid"] == 0
    assert scale["scheme"] == charts.DIVERGING


def test_difference_own_scale():
    units = maps(charts.alignment_heatmaps(fake_analysis(), "logprob").to_dict())
    assert colour_scale(units[2])["domain"] != colour_scale(units[0])["domain"]


def test_colour_independent():
    spec = charts.alignment_heatmaps(fake_analysis(), "logprob").to_dict()
    assert spec["resolve"]["scale"]["color"] == "independent"


def test_rank_symlog():
    units = maps(charts.alignment_heatmaps(fake_analysis(), "rank").to_dict())
    assert colour_scale(units[0])["type"] == "symlog"
    assert colour_scale(units[0])["domain"][0] == 0
    assert colour_scale(units[2])["type"] == "linear"


def test_rank_difference_is_log_scale():
    frame = charts.alignment_frame(fake_analysis(), "rank")
    expected = np.log10(frame["next"] + 1) - np.log10(frame["current"] + 1)
    np.testing.assert_allclose(frame["difference"], expected)
    assert frame["difference"].abs().max() <= np.log10(frame[["current", "next"]].max().max() + 1)


def test_layer_axis():
    unit = maps(charts.alignment_heatmaps(fake_analysis(layers=4), "logprob").to_dict())[0]
    y = unit["encoding"]["y"]
    assert (y["field"], y["type"]) == ("layer", "ordinal")
    assert y["scale"]["domain"] == [3, 2, 1, 0]


def test_position_axis():
    unit = maps(charts.alignment_heatmaps(fake_analysis(), "logprob").to_dict())[0]
    x = unit["encoding"]["x"]
    assert (x["field"], x["type"]) == ("position", "ordinal")
    assert x["scale"]["domain"] == list(range(len(LABELS)))


def test_label_expr_repeats():
    unit = maps(charts.alignment_heatmaps(fake_analysis(), "logprob").to_dict())[0]
    expression = unit["encoding"]["x"]["axis"]["labelExpr"]
    lookup = json.loads(expression.removesuffix("[datum.value]"))
    assert lookup == LABELS
    assert lookup[1] == lookup[5]


def test_label_expr_escapes():
    labels = ['say "hi"', "back\\slash", "</script>", "␣zebra"]
    unit = maps(charts.alignment_heatmaps(fake_analysis(labels=labels), "prob").to_dict())[0]
    expression = unit["encoding"]["x"]["axis"]["labelExpr"]
    assert json.loads(expression.removesuffix("[datum.value]")) == labels


def test_labels_rendered():
    from rshift.export import to_svg

    labels = ["alpha", "␣zebra", "alpha"]
    svg = to_svg(charts.alignment_heatmaps(fake_analysis(labels=labels), "prob"))
    assert "␣zebra" in svg
    assert svg.count(">alpha<") == 6


def test_tooltip_top5():
    unit = maps(charts.alignment_heatmaps(fake_analysis(), "logprob").to_dict())[0]
    fields = [item["field"] for item in unit["encoding"]["tooltip"]]
    assert "top5" in fields
    assert "difference" in fields


def test_shift_overlay():
    analysis = fake_analysis()
    spec = charts.alignment_heatmaps(analysis, "logprob", show_shift=True).to_dict()
    overlay = spec["vconcat"][0]["layer"][1]
    assert overlay["mark"]["type"] == "point"
    assert len(spec["datasets"][overlay["data"]["name"]]) == np.isfinite(analysis.shift).sum()


def test_no_shift_overlay():
    spec = charts.alignment_heatmaps(fake_analysis(), "logprob").to_dict()
    assert all("layer" not in entry for entry in spec["vconcat"])


def test_nan_as_null():
    spec = charts.alignment_heatmaps(fake_analysis(), "logprob").to_dict()
    last = [row for row in rows(spec) if row["position"] == len(LABELS) - 1]
    assert all(row["next"] is None for row in last)
    assert json.dumps(spec, allow_nan=False)


def test_large_heatmap_dict():
    labels = [f"t{i % 7}" for i in range(300)]
    spec = charts.alignment_heatmaps(fake_analysis(layers=31, labels=labels), "logprob").to_dict()
    assert len(rows(spec)) == 31 * 300


def test_large_heatmap_png():
    labels = [f"t{i % 7}" for i in range(300)]
    chart = charts.alignment_heatmaps(
        fake_analysis(layers=31, labels=labels), "rank", show_shift=True
    )
    assert to_png(chart, scale=1).startswith(PNG_SIGNATURE)


def test_transformer_untouched():
    labels = [f"t{i}" for i in range(300)]
    charts.alignment_heatmaps(fake_analysis(layers=31, labels=labels), "logprob").to_dict()
    assert alt.data_transformers.active == "default"
    assert "max_rows" not in alt.data_transformers.options


def test_no_torch_import():
    code = "import sys, rshift.charts, rshift.export; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False"


# ---------------------------------------------------------------- comparisons


def test_fraction_values():
    analysis = fake_analysis()
    spec = charts.aligned_fraction_chart(analysis, exclude=[0]).to_dict()
    line = layer_rows(spec, 0)
    expected = analysis.aligned_fraction([0])
    assert [row["fraction"] for row in line] == pytest.approx(expected.tolist())


def test_fraction_median_rule():
    analysis = fake_analysis(layers=6)
    analysis.lens.metrics["logprob_next"][3:, :-1] = 10.0
    analysis.shift = shift_layers(
        analysis.lens.metrics["logprob_current"], analysis.lens.metrics["logprob_next"]
    )
    spec = charts.aligned_fraction_chart(analysis).to_dict()
    rule = layer_rows(spec, 1)
    assert rule[0]["at"] == analysis.median_shift()


def test_difference_values():
    base, other = fake_analysis(seed=0), fake_analysis(seed=1)
    spec = charts.difference_heatmap(base, other, "logprob_current").to_dict()
    cell = next(row for row in rows(spec) if (row["layer"], row["position"]) == (1, 2))
    metric = "logprob_current"
    expected = other.lens.metrics[metric][1, 2] - base.lens.metrics[metric][1, 2]
    assert cell["difference"] == pytest.approx(expected)


def test_difference_domain():
    spec = charts.difference_heatmap(fake_analysis(seed=0), fake_analysis(seed=1), "prob_next")
    domain = spec.to_dict()["encoding"]["color"]["scale"]["domain"]
    assert domain[0] == -domain[1]


def test_difference_other_text():
    with pytest.raises(ValueError, match="different texts"):
        charts.difference_heatmap(fake_analysis(), fake_analysis(labels=["a", "b"]), "prob_next")


def test_difference_diverged_note():
    attenuation = Attenuation(layer=2, alpha=0.0)
    other = fake_analysis(seed=1, attenuation=attenuation)
    other.lens.metrics["logprob_current"][3, 1] = -np.inf
    spec = charts.difference_heatmap(fake_analysis(), other, "logprob_current").to_dict()
    subtitle = " ".join(spec["title"]["subtitle"])
    assert "block 2, alpha 0" in subtitle
    assert "diverged" in subtitle


def test_loss_change_values():
    spec = charts.loss_change_chart([1.0, 2.0, 3.0], [1.5, 1.0, np.inf], ["a", "b", "a", "c"])
    data = rows(spec.to_dict())
    assert [row["change"] for row in data] == [0.5, -1.0, None]
    assert [row["status"] for row in data] == ["finite", "finite", "diverged"]


def test_loss_change_targets():
    unit = charts.loss_change_chart([1.0, 2.0], [1.0, 2.0], ["a", "b", "a"]).to_dict()["layer"][0]
    expression = unit["encoding"]["x"]["axis"]["labelExpr"]
    assert json.loads(expression.removesuffix("[datum.value]")) == ["b", "a"]


def test_loss_change_bad_labels():
    with pytest.raises(ValueError, match="token labels"):
        charts.loss_change_chart([1.0, 2.0], [1.0, 2.0], ["a"])


# ---------------------------------------------------------------- landscape


def landscape_spec(current=(2, 0.5)) -> dict:
    grid = [[5.0, 3.0, 2.0], [np.inf, None, 2.0]]
    return charts.landscape_chart([1, 2], [0.0, 0.5, 1.0], grid, current, baseline=2.0).to_dict()


def test_landscape_diverged():
    data = layer_rows(landscape_spec(), 0)
    failed = [row for row in data if row["status"] == "diverged"]
    assert len(failed) == 2
    assert all(row["perplexity"] is None for row in failed)
    assert all(row["perplexity_text"] == "diverged" for row in failed)


def test_landscape_log_scale():
    colour = landscape_spec()["layer"][0]["encoding"]["color"]
    assert colour["scale"]["type"] == "log"


def test_landscape_current():
    marker = layer_rows(landscape_spec(current=(2, 0.45)), -1)
    assert (marker[0]["block"], marker[0]["alpha"]) == (2, 0.5)


def test_landscape_shape():
    with pytest.raises(ValueError, match="shape"):
        charts.landscape_chart([1, 2], [0.5], [[1.0, 2.0]])


# ---------------------------------------------------------------- corpus, gates, training


def corpus():
    first, second = fake_analysis(seed=0), fake_analysis(layers=7, seed=1)
    return aggregate_corpus(
        [first.aligned_fraction(), second.aligned_fraction()], [first.shift, second.shift]
    )


def test_corpus_band():
    spec = charts.corpus_chart(corpus()).to_dict()
    band = spec["layer"][0]
    assert band["mark"]["type"] == "area"
    assert (band["encoding"]["y"]["field"], band["encoding"]["y2"]["field"]) == ("low", "high")


def test_corpus_values():
    aggregate = corpus()
    spec = charts.corpus_chart(aggregate).to_dict()
    data = layer_rows(spec, 0)
    assert [row["mean"] for row in data] == pytest.approx(aggregate.mean_fraction.tolist())


def test_histogram_counts():
    values = np.array([0.1, 0.12, 0.5, np.nan, 1.0])
    spec = charts.shift_histogram(values, bins=10).to_dict()
    assert sum(row["count"] for row in rows(spec)) == 4
    assert "1 without" in spec["title"]["subtitle"]


def test_gate_blocks():
    spec = charts.gate_chart([0.9, 1.0, 0.7]).to_dict()
    data = layer_rows(spec, 0)
    assert [row["block"] for row in data] == [1, 2, 3]


def test_loss_curve_splits():
    spec = charts.loss_curve_chart([0, 1, 2], [3.0, 2.0, 1.5], val=([0, 2], [3.1, 1.9]))
    data = rows(spec.to_dict())
    assert [row["split"] for row in data].count("validation") == 2
    assert len(data) == 5


def test_loss_curve_lengths():
    with pytest.raises(ValueError, match="one loss per step"):
        charts.loss_curve_chart([0, 1], [3.0])


# ---------------------------------------------------------------- talk theme


def test_talk_fonts():
    config = charts.talk_theme(scale=2.0)["config"]
    assert config["axis"]["labelFontSize"] == 22
    assert config["title"]["fontSize"] == 32


def test_talk_applied():
    chart = charts.gate_chart([1.0, 0.5]).configure_view(stroke=None)
    themed = charts.apply_talk_theme(chart, scale=2.0).to_dict()["config"]
    assert themed["axis"]["titleFontSize"] == 26
    assert themed["view"]["stroke"] is None


def test_talk_copy():
    chart = charts.gate_chart([1.0, 0.5])
    charts.apply_talk_theme(chart)
    assert "axis" not in chart.to_dict()["config"]


def test_single_token():
    analysis = fake_analysis(labels=["only"])
    unit = maps(charts.alignment_heatmaps(analysis, "logprob").to_dict())[0]
    assert np.isfinite(colour_scale(unit)["domain"]).all()
    assert charts.aligned_fraction_chart(analysis).to_dict()


def test_single_token_loss():
    assert charts.loss_change_chart([], [], ["only"]).to_dict()
