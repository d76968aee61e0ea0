"""Attenuation and gates on the bundled SmolLM2, checked against an independent computation.

The reference attenuates with its own forward hooks on the Hugging Face
blocks, written here from the definition h_L = alpha * h_{L-1} + (Block_L(h_{L-1}) - h_{L-1}),
and computes the metrics with ``tests.reference``.
"""

from __future__ import annotations

import numpy as np
import pytest

from rshift.analysis import analyze_text
from rshift.attenuation import Attenuation
from rshift.gating import GateSettings, train_gates
from tests.reference import reference
from tests.test_real_models import PARAGRAPH

pytestmark = pytest.mark.real_model

LOGPROB_TOL = 2e-3
COSINE_TOL = 2e-3
PERPLEXITY_RTOL = 1e-3


def attenuated_reference(lm, text: str, layer: int, alpha: float, scope: str):
    blocks = lm.model.model.layers
    last = len(blocks) if scope == "from" else layer
    handles = [
        blocks[number - 1].register_forward_hook(
            lambda module, args, output: output - (1 - alpha) * args[0],
            # transformers records hidden states with hooks of its own, installed
            # on first use; running first makes it record the attenuated states.
            prepend=True,
        )
        for number in range(layer, last + 1)
    ]
    try:
        return reference(lm.model, lm.tokenizer, text, tie_tolerance=2e-3)
    finally:
        for handle in handles:
            handle.remove()


@pytest.mark.parametrize("scope", ["single", "from"])
def test_attenuation_matches_reference(smollm2, scope):
    attenuation = Attenuation(21, 0.5, scope)
    result = analyze_text(smollm2, PARAGRAPH, attenuation=attenuation)
    expected = attenuated_reference(smollm2, PARAGRAPH, 21, 0.5, scope)

    for name in ("logprob_current", "logprob_next"):
        diff = np.nanmax(np.abs(result.lens.metrics[name] - expected.metrics[name]))
        assert diff <= LOGPROB_TOL, name
    for name in ("cosine_current", "cosine_next"):
        diff = np.nanmax(np.abs(result.lens.metrics[name] - expected.metrics[name]))
        assert diff <= COSINE_TOL, name
    for name in ("rank_current", "rank_next"):
        diff = np.nanmax(np.abs(result.lens.metrics[name] - expected.metrics[name]))
        assert diff <= 1, name
    assert result.perplexity == pytest.approx(expected.perplexity, rel=PERPLEXITY_RTOL)
    np.testing.assert_array_equal(np.isnan(result.shift), np.isnan(expected.shift))


def test_attenuation_changes_perplexity(smollm2):
    baseline = analyze_text(smollm2, PARAGRAPH)
    attenuated = analyze_text(smollm2, PARAGRAPH, attenuation=Attenuation(21, 0.5, "from"))
    assert attenuated.perplexity != pytest.approx(baseline.perplexity, rel=1e-3)
    np.testing.assert_array_equal(
        attenuated.lens.metrics["logprob_next"][:21], baseline.lens.metrics["logprob_next"][:21]
    )


def test_gate_training_runs_on_cpu(smollm2):
    text = " ".join([PARAGRAPH] * 4)
    result = train_gates(smollm2, text, GateSettings(steps=10, window=48))
    assert len(result.train_losses) == 10
    assert np.isfinite(result.validation_before)
    assert np.isfinite(result.validation_after)
    assert len(result.gate_per_block) == 30
