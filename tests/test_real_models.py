"""The bundled models: their shape, sane predictions, and agreement with the reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rshift.analysis import analyze_text
from rshift.intervention import greedy_continuation
from rshift.tokens import tokenize
from tests.reference import reference

LOGPROB_TOL = 2e-3
COSINE_TOL = 2e-3
PERPLEXITY_RTOL = 1e-3
TIE_TOL = 2e-3

PROMPT = "The capital of France is"
# Ordinary English prose, 64 SmolLM2 tokens.
PARAGRAPH = (
    "Every morning the baker opens the shop at six o'clock. She bakes fresh bread, "
    "small cakes and a few loaves of rye for the neighbours who come in before work. "
    "By noon most of the shelves are empty, so she cleans the ovens, counts the money "
    "and plans what to bake the next day."
)
# Kept short (31 Gemma tokens) because the reference decodes every layer over a
# vocabulary of 262144 entries.
SHORT_PARAGRAPH = (
    "Every morning the baker opens the shop at six o'clock. She bakes fresh bread "
    "and small cakes for the neighbours who come in before work."
)


def max_abs_diff(engine: np.ndarray, expected: np.ndarray) -> float:
    defined = ~np.isnan(expected)
    return float(np.max(np.abs(engine[defined] - expected[defined])))


def rank_mismatches_outside_ties(analysis, ref, name: str) -> int:
    engine, expected = analysis.lens.metrics[name], ref.metrics[name]
    differs = ~np.isnan(expected) & (engine != expected)
    return int((differs & (ref.near_ties[name] == 0)).sum())


@pytest.fixture(scope="module")
def smollm2_pair(smollm2):
    return (
        analyze_text(smollm2, PARAGRAPH),
        reference(smollm2.model, smollm2.tokenizer, PARAGRAPH, tie_tolerance=TIE_TOL),
    )


@pytest.fixture(scope="module")
def gemma_pair(gemma3):
    return (
        analyze_text(gemma3, SHORT_PARAGRAPH),
        reference(gemma3.model, gemma3.tokenizer, SHORT_PARAGRAPH, tie_tolerance=TIE_TOL),
    )


def continuation(lm) -> str:
    ids = tokenize(lm.tokenizer, PROMPT).ids
    return greedy_continuation(lm, ids, None, max_new_tokens=8)


# --- SmolLM2 -----------------------------------------------------------------------------


@pytest.mark.real_model
def test_smollm2_block_count(smollm2):
    assert smollm2.adapter.num_layers == 30


@pytest.mark.real_model
def test_smollm2_hidden_size(smollm2):
    assert smollm2.adapter.hidden_size == 576


@pytest.mark.real_model
def test_smollm2_vocab_size(smollm2):
    assert smollm2.adapter.vocab_size == 49152


@pytest.mark.real_model
def test_smollm2_is_tied(smollm2):
    assert smollm2.adapter.tied is True


@pytest.mark.real_model
def test_smollm2_unscaled_embedding(smollm2):
    assert smollm2.adapter.embedding_scale == 1.0


@pytest.mark.real_model
def test_smollm2_continuation_repeats(smollm2):
    assert continuation(smollm2) == continuation(smollm2)


@pytest.mark.real_model
def test_smollm2_continuation_not_empty(smollm2):
    assert continuation(smollm2).strip()


@pytest.mark.real_model
def test_smollm2_perplexity_finite(smollm2_pair):
    analysis, _ = smollm2_pair
    assert math.isfinite(analysis.perplexity)


@pytest.mark.real_model
def test_smollm2_perplexity_plausible(smollm2_pair):
    """A model with broken weights scores near its vocabulary size instead."""
    analysis, _ = smollm2_pair
    assert 1.0 < analysis.perplexity < 200.0


@pytest.mark.real_model
def test_smollm2_token_count(smollm2_pair):
    analysis, ref = smollm2_pair
    assert len(analysis.text) == len(ref.ids)
    assert 50 <= len(ref.ids) <= 100


@pytest.mark.real_model
@pytest.mark.parametrize("name", ["logprob_current", "logprob_next"])
def test_smollm2_logprobs_match(smollm2_pair, name):
    analysis, ref = smollm2_pair
    assert max_abs_diff(analysis.lens.metrics[name], ref.metrics[name]) <= LOGPROB_TOL


@pytest.mark.real_model
@pytest.mark.parametrize("name", ["cosine_current", "cosine_next"])
def test_smollm2_cosines_match(smollm2_pair, name):
    analysis, ref = smollm2_pair
    assert max_abs_diff(analysis.lens.metrics[name], ref.metrics[name]) <= COSINE_TOL


@pytest.mark.real_model
@pytest.mark.parametrize("name", ["rank_current", "rank_next"])
def test_smollm2_ranks_within_one(smollm2_pair, name):
    analysis, ref = smollm2_pair
    assert max_abs_diff(analysis.lens.metrics[name], ref.metrics[name]) <= 1


@pytest.mark.real_model
@pytest.mark.parametrize("name", ["rank_current", "rank_next"])
def test_smollm2_ranks_differ_only_at_ties(smollm2_pair, name):
    analysis, ref = smollm2_pair
    assert rank_mismatches_outside_ties(analysis, ref, name) == 0


@pytest.mark.real_model
def test_smollm2_perplexity_matches(smollm2_pair):
    analysis, ref = smollm2_pair
    assert analysis.perplexity == pytest.approx(ref.perplexity, rel=PERPLEXITY_RTOL)


@pytest.mark.real_model
def test_smollm2_last_lens_is_logits(smollm2_pair):
    _, ref = smollm2_pair
    assert float((ref.last_lens - ref.final_logits).abs().max()) <= 1e-3


@pytest.mark.real_model
def test_smollm2_first_cosine_is_one(smollm2_pair):
    analysis, _ = smollm2_pair
    assert np.max(np.abs(analysis.lens.metrics["cosine_current"][0] - 1.0)) <= 1e-5


@pytest.mark.real_model
def test_smollm2_final_layer_prefers_next(smollm2_pair):
    """A trained model is output-aligned at its last layer for most positions."""
    analysis, _ = smollm2_pair
    assert analysis.aligned_fraction()[-1] > 0.5


# --- Gemma 3 -----------------------------------------------------------------------------


@pytest.mark.gemma
def test_gemma_block_count(gemma3):
    assert gemma3.adapter.num_layers == 18


@pytest.mark.gemma
def test_gemma_hidden_size(gemma3):
    assert gemma3.adapter.hidden_size == 640


@pytest.mark.gemma
def test_gemma_vocab_size(gemma3):
    assert gemma3.adapter.vocab_size == 262144


@pytest.mark.gemma
def test_gemma_is_tied(gemma3):
    assert gemma3.adapter.tied is True


@pytest.mark.gemma
def test_gemma_embedding_scale(gemma3):
    assert gemma3.adapter.embedding_scale == pytest.approx(math.sqrt(640), abs=1e-3)


@pytest.mark.gemma
def test_gemma_continuation_repeats(gemma3):
    assert continuation(gemma3) == continuation(gemma3)


@pytest.mark.gemma
def test_gemma_continuation_not_empty(gemma3):
    assert continuation(gemma3).strip()


@pytest.mark.gemma
def test_gemma_perplexity_finite(gemma_pair):
    analysis, _ = gemma_pair
    assert math.isfinite(analysis.perplexity)


@pytest.mark.gemma
def test_gemma_perplexity_plausible(gemma_pair):
    analysis, _ = gemma_pair
    assert 1.0 < analysis.perplexity < 200.0


@pytest.mark.gemma
def test_gemma_token_count(gemma_pair):
    analysis, ref = gemma_pair
    assert len(analysis.text) == len(ref.ids)
    assert 25 <= len(ref.ids) <= 50


@pytest.mark.gemma
def test_gemma_starts_with_bos(gemma_pair, gemma3):
    analysis, _ = gemma_pair
    assert int(analysis.text.ids[0]) == gemma3.tokenizer.bos_token_id


@pytest.mark.gemma
@pytest.mark.parametrize("name", ["logprob_current", "logprob_next"])
def test_gemma_logprobs_match(gemma_pair, name):
    analysis, ref = gemma_pair
    assert max_abs_diff(analysis.lens.metrics[name], ref.metrics[name]) <= LOGPROB_TOL


@pytest.mark.gemma
@pytest.mark.parametrize("name", ["cosine_current", "cosine_next"])
def test_gemma_cosines_match(gemma_pair, name):
    analysis, ref = gemma_pair
    assert max_abs_diff(analysis.lens.metrics[name], ref.metrics[name]) <= COSINE_TOL


@pytest.mark.gemma
@pytest.mark.parametrize("name", ["rank_current", "rank_next"])
def test_gemma_ranks_within_one(gemma_pair, name):
    analysis, ref = gemma_pair
    assert max_abs_diff(analysis.lens.metrics[name], ref.metrics[name]) <= 1


@pytest.mark.gemma
@pytest.mark.parametrize("name", ["rank_current", "rank_next"])
def test_gemma_ranks_differ_only_at_ties(gemma_pair, name):
    analysis, ref = gemma_pair
    assert rank_mismatches_outside_ties(analysis, ref, name) == 0


@pytest.mark.gemma
def test_gemma_perplexity_matches(gemma_pair):
    analysis, ref = gemma_pair
    assert analysis.perplexity == pytest.approx(ref.perplexity, rel=PERPLEXITY_RTOL)


@pytest.mark.gemma
def test_gemma_last_lens_is_logits(gemma_pair):
    _, ref = gemma_pair
    assert float((ref.last_lens - ref.final_logits).abs().max()) <= 1e-3


@pytest.mark.gemma
def test_gemma_first_cosine_is_one(gemma_pair):
    """The scaled embedding still points along its unscaled row."""
    analysis, _ = gemma_pair
    assert np.max(np.abs(analysis.lens.metrics["cosine_current"][0] - 1.0)) <= 1e-5


@pytest.mark.gemma
def test_gemma_first_state_is_scaled(gemma_pair, gemma3):
    _, ref = gemma_pair
    rows = gemma3.model.model.embed_tokens.weight[torch.tensor(ref.ids)]
    expected = rows.float() * math.sqrt(640)
    assert float((ref.stream[0] - expected).abs().max()) <= 1e-2
