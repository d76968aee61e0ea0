"""The logit lens and its metrics against an independent reference, on tiny models."""

from __future__ import annotations

import json
import logging
import math
import re

import numpy as np
import pytest
import torch

from rshift.analysis import LiveAnalysis, analyze_text
from rshift.attenuation import Attenuation
from rshift.lens import lens_logits
from rshift.stream import capture_stream
from rshift.tokens import EmptyTextError, tokenize
from tests.conftest import SAMPLE_TEXT
from tests.reference import METRICS, reference

LOGPROB_TOL = 1e-4
COSINE_TOL = 1e-5
PERPLEXITY_RTOL = 1e-5
TIE_TOL = 1e-4

_CACHE: dict[str, tuple] = {}


def analysed(lm):
    """Return the analysis and the reference of SAMPLE_TEXT, computed once per tiny model."""
    if lm.name not in _CACHE:
        _CACHE[lm.name] = (
            analyze_text(lm, SAMPLE_TEXT),
            reference(lm.model, lm.tokenizer, SAMPLE_TEXT, tie_tolerance=TIE_TOL),
        )
    return _CACHE[lm.name]


def hook_snapshot(model: torch.nn.Module) -> dict[str, tuple]:
    """Return the ids of every forward hook and pre-hook, per module and global.

    Hugging Face installs its own output-recording hooks the first time hidden
    states are requested and keeps them, so tests compare snapshots taken
    before and after instead of expecting no hooks at all.
    """
    snapshot = {
        name: (tuple(module._forward_hooks), tuple(module._forward_pre_hooks))
        for name, module in model.named_modules()
    }
    nn_module = torch.nn.modules.module
    snapshot["<global>"] = (
        tuple(nn_module._global_forward_hooks),
        tuple(nn_module._global_forward_pre_hooks),
    )
    return snapshot


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    defined = ~np.isnan(b)
    return float(np.max(np.abs(a[defined] - b[defined])))


# --- agreement with the reference ------------------------------------------------


def test_token_ids_match_reference(tiny_model):
    analysis, ref = analysed(tiny_model)
    assert analysis.text.ids.tolist() == ref.ids


@pytest.mark.parametrize("name", METRICS)
def test_undefined_entries_match_reference(tiny_model, name):
    analysis, ref = analysed(tiny_model)
    engine_nan = np.isnan(analysis.lens.metrics[name])
    assert np.array_equal(engine_nan, np.isnan(ref.metrics[name]))


@pytest.mark.parametrize("name", ["logprob_current", "logprob_next"])
def test_logprobs_match_reference(tiny_model, name):
    analysis, ref = analysed(tiny_model)
    assert max_abs_diff(analysis.lens.metrics[name], ref.metrics[name]) <= LOGPROB_TOL


@pytest.mark.parametrize("name", ["cosine_current", "cosine_next"])
def test_cosines_match_reference(tiny_model, name):
    analysis, ref = analysed(tiny_model)
    assert max_abs_diff(analysis.lens.metrics[name], ref.metrics[name]) <= COSINE_TOL


@pytest.mark.parametrize("name", ["rank_current", "rank_next"])
def test_ranks_within_one_of_reference(tiny_model, name):
    analysis, ref = analysed(tiny_model)
    assert max_abs_diff(analysis.lens.metrics[name], ref.metrics[name]) <= 1


@pytest.mark.parametrize("name", ["rank_current", "rank_next"])
def test_rank_differences_only_at_ties(tiny_model, name):
    analysis, ref = analysed(tiny_model)
    engine, expected = analysis.lens.metrics[name], ref.metrics[name]
    defined = ~np.isnan(expected)
    differs = defined & (engine != expected)
    assert (ref.near_ties[name][differs] > 0).all()


def test_shift_layers_match_reference(tiny_model):
    analysis, ref = analysed(tiny_model)
    assert np.array_equal(analysis.shift, ref.shift, equal_nan=True)


def test_perplexity_matches_reference(tiny_model):
    analysis, ref = analysed(tiny_model)
    assert analysis.perplexity == pytest.approx(ref.perplexity, rel=PERPLEXITY_RTOL)


def test_reference_lens_equals_logits(tiny_model):
    _, ref = analysed(tiny_model)
    assert float((ref.last_lens - ref.final_logits).abs().max()) <= 1e-4


def test_lens_at_last_layer_equals_logits(tiny_model):
    ids = tokenize(tiny_model.tokenizer, SAMPLE_TEXT).ids
    stream = capture_stream(tiny_model, ids)
    with torch.inference_mode():
        lens = lens_logits(tiny_model.adapter, stream.resid[-1])
        logits = tiny_model.model(input_ids=ids.view(1, -1), use_cache=False).logits[0]
    assert float((lens - logits.float()).abs().max()) <= 1e-4


def test_stream_has_one_entry_per_layer(tiny_model):
    ids = tokenize(tiny_model.tokenizer, SAMPLE_TEXT).ids
    stream = capture_stream(tiny_model, ids)
    assert stream.resid.shape == (
        tiny_model.adapter.num_layers + 1,
        len(ids),
        tiny_model.adapter.hidden_size,
    )


def test_stream_matches_reference_stream(tiny_model):
    _, ref = analysed(tiny_model)
    stream = capture_stream(tiny_model, torch.tensor(ref.ids))
    expected = torch.stack(ref.stream)
    assert float((stream.resid.float() - expected).abs().max()) <= 1e-5


# --- layer 0 ---------------------------------------------------------------------


def test_first_layer_cosine_is_one(tiny_models):
    """Llama and Gemma put only the (scaled) token embedding into h_0."""
    for key in ("llama_tied", "llama_untied", "gemma3"):
        analysis, _ = analysed(tiny_models[key])
        cosine = analysis.lens.metrics["cosine_current"][0]
        assert np.max(np.abs(cosine - 1.0)) <= COSINE_TOL, key


def test_gpt2_first_layer_cosine_below_one(tiny_models):
    """GPT-2 adds position embeddings to h_0, so it is not parallel to the token row."""
    analysis, _ = analysed(tiny_models["gpt2"])
    cosine = analysis.lens.metrics["cosine_current"][0]
    assert np.all(cosine < 1.0 - 1e-3)


# --- chunking ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def chunked_pair(tiny_models):
    """Analyse each tiny model with one lens row per chunk and with all rows in one chunk."""
    return {
        key: (
            analyze_text(lm, SAMPLE_TEXT, chunk_bytes=1),
            analyze_text(lm, SAMPLE_TEXT, chunk_bytes=1 << 30),
        )
        for key, lm in tiny_models.items()
    }


# One-row and many-row matrix products use different BLAS kernels that round
# differently (about 2e-6 on the tiny models), so float metrics get a tolerance.
CHUNK_FLOAT_TOL = 1e-5
CHUNK_KEYS = ["llama_tied", "llama_untied", "gemma3", "gpt2"]


@pytest.mark.parametrize("key", CHUNK_KEYS)
def test_chunk_size_keeps_float_metrics(chunked_pair, key):
    small, large = chunked_pair[key]
    for name, values in small.lens.metrics.items():
        assert np.array_equal(np.isnan(values), np.isnan(large.lens.metrics[name])), name
        assert max_abs_diff(values, large.lens.metrics[name]) <= CHUNK_FLOAT_TOL, name


@pytest.mark.parametrize("key", CHUNK_KEYS)
def test_chunk_size_keeps_ranks_exact(chunked_pair, key):
    small, large = chunked_pair[key]
    for name in ("rank_current", "rank_next"):
        expected = large.lens.metrics[name]
        assert np.array_equal(small.lens.metrics[name], expected, equal_nan=True), name


@pytest.mark.parametrize("key", CHUNK_KEYS)
def test_chunk_size_keeps_top_ids(chunked_pair, key):
    small, large = chunked_pair[key]
    assert np.array_equal(small.lens.top_ids, large.lens.top_ids)


@pytest.mark.parametrize("key", CHUNK_KEYS)
def test_chunk_size_keeps_shift_layers(chunked_pair, key):
    small, large = chunked_pair[key]
    assert np.array_equal(small.shift, large.shift, equal_nan=True)


@pytest.mark.parametrize("key", CHUNK_KEYS)
def test_chunk_size_keeps_geometry_exact(chunked_pair, key):
    """Cosines and norms never pass through the chunked product."""
    small, large = chunked_pair[key]
    for name in ("cosine_current", "cosine_next"):
        expected = large.lens.metrics[name]
        assert np.array_equal(small.lens.metrics[name], expected, equal_nan=True), name
    assert np.array_equal(small.lens.resid_norm, large.lens.resid_norm)


# --- hooks --------------------------------------------------------------------------


def test_no_hooks_remain_after_analysis(tiny_model):
    before = hook_snapshot(tiny_model.model)
    analyze_text(tiny_model, SAMPLE_TEXT)
    assert hook_snapshot(tiny_model.model) == before


def test_no_hooks_remain_after_attenuation(tiny_model):
    before = hook_snapshot(tiny_model.model)
    live = LiveAnalysis(tiny_model, SAMPLE_TEXT)
    live.run(Attenuation(layer=2, alpha=0.5, scope="from"))
    assert hook_snapshot(tiny_model.model) == before


def test_no_hooks_remain_after_failure(tiny_model, monkeypatch):
    block = tiny_model.adapter.blocks[1]
    original = type(block).forward

    def failing(self, *args, **kwargs):
        if self is block:
            raise RuntimeError("block failed on purpose")
        return original(self, *args, **kwargs)

    before = hook_snapshot(tiny_model.model)
    monkeypatch.setattr(type(block), "forward", failing)
    with pytest.raises(RuntimeError, match="on purpose"):
        analyze_text(tiny_model, SAMPLE_TEXT)
    assert hook_snapshot(tiny_model.model) == before


def test_analysis_unchanged_after_failure(tiny_model, monkeypatch):
    before = analyze_text(tiny_model, SAMPLE_TEXT)
    block = tiny_model.adapter.blocks[-1]
    original = type(block).forward

    def failing(self, *args, **kwargs):
        if self is block:
            raise RuntimeError("block failed on purpose")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(block), "forward", failing)
    with pytest.raises(RuntimeError):
        analyze_text(tiny_model, SAMPLE_TEXT, attenuation=Attenuation(layer=1, alpha=0.0))
    monkeypatch.undo()
    after = analyze_text(tiny_model, SAMPLE_TEXT)
    for name, values in before.lens.metrics.items():
        assert np.array_equal(values, after.lens.metrics[name], equal_nan=True), name


# --- undefined values and edge cases -----------------------------------------------------


@pytest.mark.parametrize("name", ["logprob_next", "rank_next", "cosine_next"])
def test_next_metrics_nan_at_last(tiny_model, name):
    analysis, _ = analysed(tiny_model)
    assert np.isnan(analysis.lens.metrics[name][:, -1]).all()


@pytest.mark.parametrize("name", ["logprob_next", "rank_next", "cosine_next"])
def test_next_metrics_defined_elsewhere(tiny_model, name):
    analysis, _ = analysed(tiny_model)
    assert np.isfinite(analysis.lens.metrics[name][:, :-1]).all()


@pytest.mark.parametrize("name", ["logprob_next", "rank_next", "cosine_next"])
def test_json_writes_null_at_last(tiny_model, name):
    analysis, _ = analysed(tiny_model)
    rows = analysis.to_json()["metrics"][name]
    assert all(row[-1] is None for row in rows)


def test_json_has_no_nan(tiny_model):
    """json.dumps with allow_nan=False raises ValueError on any NaN or infinity."""
    analysis, _ = analysed(tiny_model)
    assert json.dumps(analysis.to_json(), allow_nan=False)


def test_json_shift_null_at_last(tiny_model):
    analysis, _ = analysed(tiny_model)
    assert analysis.to_json()["shift_layer"]["per_position"][-1] is None


SINGLE_TOKEN_TEXT = "The"


def test_single_token_text_is_one_token(tiny_model):
    assert len(tokenize(tiny_model.tokenizer, SINGLE_TOKEN_TEXT)) == 1


def test_single_token_perplexity_is_none(tiny_model):
    analysis = analyze_text(tiny_model, SINGLE_TOKEN_TEXT)
    assert analysis.perplexity is None


def test_single_token_has_perplexity_note(tiny_model):
    analysis = analyze_text(tiny_model, SINGLE_TOKEN_TEXT)
    assert analysis.perplexity_note


def test_single_token_json_perplexity_null(tiny_model):
    result = analyze_text(tiny_model, SINGLE_TOKEN_TEXT).to_json()
    assert result["perplexity"] is None
    json.dumps(result, allow_nan=False)


@pytest.mark.parametrize("text", ["", "   ", "\n\t \n"])
def test_empty_text_raises(tiny_models, text):
    with pytest.raises(EmptyTextError):
        analyze_text(tiny_models["llama_tied"], text)


def test_truncation_keeps_first_tokens(tiny_model):
    full = tokenize(tiny_model.tokenizer, SAMPLE_TEXT).ids
    analysis = analyze_text(tiny_model, SAMPLE_TEXT, max_tokens=5)
    assert analysis.text.ids.tolist() == full[:5].tolist()


def test_truncation_warning_counts_dropped(tiny_model):
    total = len(tokenize(tiny_model.tokenizer, SAMPLE_TEXT))
    analysis = analyze_text(tiny_model, SAMPLE_TEXT, max_tokens=5)
    assert len(analysis.warnings) == 1
    assert re.search(rf"\b{total - 5}\b", analysis.warnings[0])


def test_truncation_is_logged(tiny_models, caplog):
    with caplog.at_level(logging.WARNING):
        analyze_text(tiny_models["gpt2"], SAMPLE_TEXT, max_tokens=5)
    assert any("dropped" in record.getMessage() for record in caplog.records)


def test_no_warning_without_truncation(tiny_model):
    analysis, _ = analysed(tiny_model)
    assert analysis.warnings == []


# --- top-k and sinks ---------------------------------------------------------------------


def test_top_probs_are_sorted(tiny_model):
    analysis, _ = analysed(tiny_model)
    assert (np.diff(analysis.lens.top_probs, axis=-1) <= 0).all()


def test_top_probs_sum_at_most_one(tiny_model):
    analysis, _ = analysed(tiny_model)
    assert (analysis.lens.top_probs.sum(axis=-1) <= 1.0 + 1e-6).all()


def test_top_probs_are_nonnegative(tiny_model):
    analysis, _ = analysed(tiny_model)
    assert (analysis.lens.top_probs >= 0).all()


def test_top_one_matches_reference(tiny_model):
    analysis, ref = analysed(tiny_model)
    top = analysis.lens.top_ids[-1, :, 0]
    assert np.array_equal(top, ref.final_logits.argmax(dim=-1).numpy())


def test_sinks_include_first_position(tiny_model):
    analysis, _ = analysed(tiny_model)
    assert 0 in analysis.sinks


def test_perplexity_is_finite(tiny_model):
    analysis, _ = analysed(tiny_model)
    assert math.isfinite(analysis.perplexity)
