"""``python -m rshift analyze`` on the bundled models against the independent reference.

These run the command in a subprocess, exactly as a user would, and compare
its JSON with ``tests.reference`` computed in this process.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.reference import reference
from tests.test_real_attenuation import attenuated_reference
from tests.test_real_models import PARAGRAPH, SHORT_PARAGRAPH

LOGPROB_TOL = 2e-3
COSINE_TOL = 2e-3
PERPLEXITY_RTOL = 1e-3


def run_cli(tmp_path, model: str, text: str, *extra: str) -> dict:
    text_file = tmp_path / "text.txt"
    text_file.write_text(text, encoding="utf-8")
    out = tmp_path / "out.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rshift",
            "analyze",
            "--model",
            model,
            "--device",
            "cpu",
            "--text-file",
            str(text_file),
            "--json",
            str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(out.read_text())


def grid(data: dict, name: str) -> np.ndarray:
    return np.array(
        [[np.nan if v is None else v for v in row] for row in data["metrics"][name]], dtype=float
    )


def assert_matches(data: dict, expected) -> None:
    assert data["token_ids"] == expected.ids
    for name, tolerance in (
        ("logprob_current", LOGPROB_TOL),
        ("logprob_next", LOGPROB_TOL),
        ("cosine_current", COSINE_TOL),
        ("cosine_next", COSINE_TOL),
        ("rank_current", 1),
        ("rank_next", 1),
    ):
        engine = grid(data, name)
        np.testing.assert_array_equal(np.isnan(engine), np.isnan(expected.metrics[name]), name)
        assert np.nanmax(np.abs(engine - expected.metrics[name])) <= tolerance, name
    assert data["perplexity"] == pytest.approx(expected.perplexity, rel=PERPLEXITY_RTOL)


@pytest.mark.real_model
def test_cli_smollm2_matches_reference(smollm2, tmp_path):
    data = run_cli(tmp_path, "smollm2-135m", PARAGRAPH)
    assert data["model"]["num_layers"] == 30
    assert_matches(data, reference(smollm2.model, smollm2.tokenizer, PARAGRAPH, tie_tolerance=2e-3))


@pytest.mark.real_model
@pytest.mark.parametrize("scope", ["single", "from"])
def test_cli_attenuation_matches_reference(smollm2, tmp_path, scope):
    data = run_cli(
        tmp_path,
        "smollm2-135m",
        PARAGRAPH,
        "--attenuate-layer",
        "21",
        "--alpha",
        "0.5",
        "--scope",
        scope,
    )
    assert data["attenuation"]["scope"] == scope
    assert_matches(data, attenuated_reference(smollm2, PARAGRAPH, 21, 0.5, scope))


@pytest.mark.gemma
def test_cli_gemma_matches_reference(gemma3, tmp_path):
    data = run_cli(tmp_path, "gemma3-270m", SHORT_PARAGRAPH)
    assert data["model"]["num_layers"] == 18
    assert data["model"]["vocab_size"] == 262144
    expected = reference(gemma3.model, gemma3.tokenizer, SHORT_PARAGRAPH, tie_tolerance=2e-3)
    assert_matches(data, expected)
