"""Shift-layer localisation and its aggregates, on hand-made arrays."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rshift.shift import (
    aggregate_corpus,
    aligned_fraction,
    median_shift,
    output_aligned,
    shift_layers,
    sink_positions,
)

NAN = math.nan


def grids(next_rows: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Return (logprob_current, logprob_next) with logprob_current all zero."""
    logprob_next = np.array(next_rows, dtype=float)
    return np.zeros_like(logprob_next), logprob_next


# --- shift layer --------------------------------------------------------------------


def test_shift_when_aligned_everywhere():
    current, following = grids([[1.0, NAN], [1.0, NAN], [1.0, NAN]])
    assert shift_layers(current, following)[0] == 0


def test_shift_needs_every_deeper_layer():
    """Aligned at layers 1 and 3 but not 2: the shift is 3, not 1."""
    current, following = grids([[-1.0, NAN], [1.0, NAN], [-1.0, NAN], [1.0, NAN]])
    assert shift_layers(current, following)[0] == 3


def test_shift_is_first_of_suffix():
    current, following = grids([[-1.0, NAN], [-2.0, NAN], [0.5, NAN], [3.0, NAN]])
    assert shift_layers(current, following)[0] == 2


def test_shift_nan_when_never_aligned():
    current, following = grids([[-1.0, NAN], [-1.0, NAN], [-1.0, NAN]])
    assert np.isnan(shift_layers(current, following)[0])


def test_shift_nan_when_last_layer_fails():
    """Aligned in every layer but the deepest, so the condition never lasts to the end."""
    current, following = grids([[1.0, NAN], [1.0, NAN], [-1.0, NAN]])
    assert np.isnan(shift_layers(current, following)[0])


def test_shift_requires_strict_inequality():
    current, following = grids([[0.0, NAN], [0.0, NAN]])
    assert np.isnan(shift_layers(current, following)[0])


def test_shift_nan_at_last_position():
    current, following = grids([[1.0, 1.0, NAN], [1.0, 1.0, NAN]])
    assert np.isnan(shift_layers(current, following)[-1])


def test_shift_nan_at_last_even_if_finite():
    """The last position has no next token, whatever numbers the caller passes there."""
    current, following = grids([[1.0, 1.0], [1.0, 1.0]])
    assert np.isnan(shift_layers(current, following)[-1])


def test_shift_per_position():
    current, following = grids(
        [
            [1.0, -1.0, -1.0, 1.0, NAN],
            [1.0, 1.0, -1.0, -1.0, NAN],
            [1.0, 1.0, 1.0, -1.0, NAN],
        ]
    )
    expected = np.array([0.0, 1.0, 2.0, NAN, NAN])
    assert np.array_equal(shift_layers(current, following), expected, equal_nan=True)


def test_shift_uses_current_logprob():
    current = np.array([[-5.0, 0.0], [-1.0, 0.0], [-3.0, 0.0]])
    following = np.array([[-4.0, NAN], [-2.0, NAN], [-2.5, NAN]])
    assert shift_layers(current, following)[0] == 2


def test_shift_single_position_is_nan():
    current, following = grids([[NAN], [NAN]])
    result = shift_layers(current, following)
    assert result.shape == (1,)
    assert np.isnan(result[0])


def test_output_aligned_false_at_nan():
    current, following = grids([[1.0, NAN]])
    assert output_aligned(current, following).tolist() == [[True, False]]


# --- aligned fraction ------------------------------------------------------------------


FRACTION_NEXT = [
    [1.0, -1.0, -1.0, -1.0, NAN],
    [1.0, 1.0, -1.0, -1.0, NAN],
    [1.0, 1.0, 1.0, 1.0, NAN],
]


def test_aligned_fraction_per_layer():
    current, following = grids(FRACTION_NEXT)
    assert np.allclose(aligned_fraction(current, following), [0.25, 0.5, 1.0], atol=1e-12)


def test_aligned_fraction_excludes_positions():
    current, following = grids(FRACTION_NEXT)
    result = aligned_fraction(current, following, exclude=[0])
    assert np.allclose(result, [0.0, 1 / 3, 1.0], atol=1e-12)


def test_aligned_fraction_excludes_several():
    current, following = grids(FRACTION_NEXT)
    result = aligned_fraction(current, following, exclude=[0, 3])
    assert np.allclose(result, [0.0, 0.5, 1.0], atol=1e-12)


def test_aligned_fraction_ignores_last_position():
    current, following = grids(FRACTION_NEXT)
    following[:, -1] = 10.0
    assert np.allclose(aligned_fraction(current, following), [0.25, 0.5, 1.0], atol=1e-12)


def test_aligned_fraction_nan_when_all_excluded():
    current, following = grids(FRACTION_NEXT)
    result = aligned_fraction(current, following, exclude=[0, 1, 2, 3])
    assert np.isnan(result).all()


def test_aligned_fraction_single_position_nan():
    current, following = grids([[NAN], [NAN]])
    assert np.isnan(aligned_fraction(current, following)).all()


# --- median shift --------------------------------------------------------------------


def test_median_shift_skips_nan():
    assert median_shift(np.array([NAN, 2.0, 4.0, 6.0])) == 4.0


def test_median_shift_with_exclusion():
    assert median_shift(np.array([NAN, 2.0, 4.0, 6.0]), exclude=[1]) == 5.0


def test_median_shift_none_when_undefined():
    assert median_shift(np.array([NAN, NAN])) is None


# --- attention sinks --------------------------------------------------------------------


def norms_with_outlier(position: int, value: float) -> np.ndarray:
    norms = np.ones((5, 6))
    norms[1:, position] = value
    return norms


def test_sink_finds_norm_outlier():
    assert sink_positions(norms_with_outlier(3, 10.0)) == [0, 3]


def test_sink_always_includes_first():
    assert sink_positions(np.ones((5, 6))) == [0]


def test_sink_ignores_mild_growth():
    assert sink_positions(norms_with_outlier(3, 3.0)) == [0]


def test_sink_ignores_embedding_layer():
    """Only blocks 1..N count: a large norm at layer 0 alone is no sink."""
    norms = np.ones((5, 6))
    norms[0, 2] = 100.0
    assert sink_positions(norms) == [0]


def test_sink_respects_ratio():
    assert sink_positions(norms_with_outlier(4, 3.0), ratio=2.0) == [0, 4]


def test_sink_with_first_outlier():
    assert sink_positions(norms_with_outlier(0, 50.0)) == [0]


# --- corpus aggregate ------------------------------------------------------------------------


DEPTH = np.linspace(0.0, 1.0, 21)
# The 4-block curve is linear, so interpolating between its layers is exact.
# The 20-block curve has a layer on every grid point and needs no interpolation.
SHALLOW = np.linspace(0.0, 1.0, 5)
DEEP = np.clip((DEPTH - 0.5) * 2.0, 0.0, 1.0)
SHALLOW_SHIFT = np.array([2.0, NAN, 4.0])
DEEP_SHIFT = np.array([10.0, 20.0])


@pytest.fixture()
def two_models():
    return aggregate_corpus([SHALLOW, DEEP], [SHALLOW_SHIFT, DEEP_SHIFT], resamples=500)


def test_corpus_depth_grid(two_models):
    assert np.allclose(two_models.depth, DEPTH, atol=1e-12)


def test_corpus_mean_on_grid(two_models):
    assert np.allclose(two_models.mean_fraction, (DEPTH + DEEP) / 2.0, atol=1e-12)


def test_corpus_counts_prompts(two_models):
    assert two_models.prompts == 2


def test_corpus_relative_shift(two_models):
    expected = np.array([0.5, NAN, 1.0, 0.5, 1.0])
    assert np.allclose(two_models.relative_shift, expected, atol=1e-12, equal_nan=True)


def test_corpus_median_relative_shift(two_models):
    assert two_models.median_relative_shift() == pytest.approx(0.75, abs=1e-12)


def test_corpus_ci_below_mean(two_models):
    assert (two_models.ci_low <= two_models.mean_fraction + 1e-12).all()


def test_corpus_ci_above_mean(two_models):
    assert (two_models.ci_high >= two_models.mean_fraction - 1e-12).all()


def test_corpus_ci_has_width():
    rng = np.random.default_rng(1)
    curves = [np.sort(rng.random(depth + 1)) for depth in (4, 6, 8, 12, 20, 30)]
    shifts = [np.array([1.0]) for _ in curves]
    result = aggregate_corpus(curves, shifts, resamples=500)
    assert (result.ci_high[1:-1] > result.ci_low[1:-1]).all()
    assert (
        (result.ci_low <= result.mean_fraction) & (result.mean_fraction <= result.ci_high)
    ).all()


def test_corpus_ci_is_deterministic():
    first = aggregate_corpus([SHALLOW, DEEP], [SHALLOW_SHIFT, DEEP_SHIFT], seed=3)
    second = aggregate_corpus([SHALLOW, DEEP], [SHALLOW_SHIFT, DEEP_SHIFT], seed=3)
    assert np.array_equal(first.ci_low, second.ci_low)


def test_corpus_single_prompt_mean():
    result = aggregate_corpus([SHALLOW], [SHALLOW_SHIFT])
    assert np.allclose(result.mean_fraction, DEPTH, atol=1e-12)


def test_corpus_single_prompt_ci_collapses():
    result = aggregate_corpus([SHALLOW], [SHALLOW_SHIFT])
    assert np.allclose(result.ci_low, result.mean_fraction, atol=1e-12)
    assert np.allclose(result.ci_high, result.mean_fraction, atol=1e-12)


def test_corpus_undefined_prompt_ignored():
    """A one-token prompt has no aligned fraction, so it must not change the mean."""
    undefined = np.full(7, NAN)
    result = aggregate_corpus([SHALLOW, undefined], [SHALLOW_SHIFT, np.array([NAN])])
    assert np.allclose(result.mean_fraction, DEPTH, atol=1e-12)


@pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")
def test_corpus_dict_is_json_safe():
    result = aggregate_corpus([np.full(5, NAN)], [np.array([NAN])])
    encoded = json.dumps(result.to_dict(), allow_nan=False)
    assert json.loads(encoded)["median_relative_shift"] is None


def test_corpus_empty_raises():
    with pytest.raises(ValueError, match="no prompts"):
        aggregate_corpus([], [])
