"""Learnable residual gates: parameterisation, training, persistence, bad input."""

from __future__ import annotations

import json

import pytest
import torch

from rshift.gating import (
    GateSettings,
    NotEnoughTextError,
    ResidualGates,
    gates_to_bytes,
    load_gates,
    save_gates,
    train_gates,
    window_loss,
)
from rshift.stream import capture_stream
from tests.conftest import CORPUS, SAMPLE_TEXT

# Train and validation parts come from the same repeated text, so gates that
# fit the training windows must also fit the validation windows.
TRAINING_TEXT = " ".join(CORPUS * 6)


def test_gates_start_at_identity(tiny_models):
    lm = tiny_models["llama_tied"]
    window = torch.tensor(lm.tokenizer(SAMPLE_TEXT)["input_ids"])
    for kind in ("scalar", "token"):
        gates = ResidualGates(kind, lm.adapter.num_layers, lm.adapter.hidden_size)
        assert all(value == 1.0 for value in gates.values().values())
        with torch.no_grad():
            gated = window_loss(lm, window, gates)
            plain = window_loss(lm, window, None)
        assert torch.equal(gated, plain), kind


def test_gate_stays_in_range():
    gates = ResidualGates("scalar", 4, 8)
    with torch.no_grad():
        gates.theta.copy_(torch.tensor([-50.0, -1.0, 1.0, 50.0]))
    values = list(gates.values().values())
    assert min(values) >= 0.0
    assert max(values) <= 2.0
    assert values[0] < values[1] < values[2] < values[3]


def test_scalar_gate_equals_fixed_attenuation(tiny_models):
    """A scalar gate g at one block acts like an attenuation with alpha = g."""
    from rshift.attenuation import Attenuation
    from rshift.hooks import HookSet

    lm = tiny_models["gemma3"]
    ids = torch.tensor(lm.tokenizer(SAMPLE_TEXT)["input_ids"])
    gates = ResidualGates("scalar", lm.adapter.num_layers, lm.adapter.hidden_size, first_block=4)
    with torch.no_grad():
        gates.theta.copy_(torch.tensor([0.0, -20.0, 0.0]))  # block 5 gets g = 2 * sigmoid(-20)
    alpha = float(2 * torch.sigmoid(torch.tensor(-20.0)))

    with HookSet() as hooks, torch.no_grad():
        gates.install(hooks, lm.adapter)
        gated = lm.model(ids[None], use_cache=False).logits[0]
    expected = capture_stream(lm, ids, Attenuation(5, alpha)).resid[-1]
    from rshift.lens import lens_logits

    torch.testing.assert_close(gated, lens_logits(lm.adapter, expected), rtol=0, atol=1e-4)


@pytest.mark.parametrize("kind", ["scalar", "token"])
def test_training_lowers_validation_loss(tiny_models, kind):
    lm = tiny_models["llama_tied"]
    settings = GateSettings(kind=kind, steps=40, learning_rate=0.1, window=32)
    losses = []
    result = train_gates(
        lm, TRAINING_TEXT, settings, on_step=lambda step, loss: losses.append(loss)
    )
    assert len(losses) == 40
    assert result.train_losses == losses
    assert result.validation_after < result.validation_before
    assert set(result.gate_per_block) == set(range(1, lm.adapter.num_layers + 1))
    assert any(abs(value - 1.0) > 1e-3 for value in result.gate_per_block.values())


def test_training_leaves_model_unchanged(tiny_models):
    lm = tiny_models["llama_untied"]
    before = {name: p.clone() for name, p in lm.model.named_parameters()}
    train_gates(lm, TRAINING_TEXT, GateSettings(steps=3, window=32))
    for name, parameter in lm.model.named_parameters():
        assert torch.equal(parameter, before[name]), name
        assert not parameter.requires_grad, name


def test_progress_reports_loss(tiny_models):
    messages = []
    train_gates(
        tiny_models["gpt2"],
        TRAINING_TEXT,
        GateSettings(steps=2, window=32),
        progress=lambda fraction, message: messages.append((fraction, message)),
    )
    assert [fraction for fraction, _ in messages] == [0.5, 1.0]
    assert "loss" in messages[-1][1]


def test_too_little_text_says_how_much(tiny_models):
    settings = GateSettings(window=64)
    with pytest.raises(NotEnoughTextError) as error:
        train_gates(tiny_models["llama_tied"], "Too short.", settings)
    message = str(error.value)
    assert str(settings.min_tokens()) in message
    assert "tokens" in message


@pytest.mark.parametrize(
    "options",
    [
        {"kind": "vector"},
        {"steps": 0},
        {"learning_rate": 0.0},
        {"window": 2},
        {"validation_fraction": 0.9},
        {"first_block": 0},
    ],
)
def test_invalid_settings_rejected(options):
    with pytest.raises(ValueError):
        GateSettings(**options)


@pytest.mark.parametrize("kind", ["scalar", "token"])
def test_save_and_load_roundtrip(tiny_models, tmp_path, kind):
    lm = tiny_models["llama_tied"]
    result = train_gates(lm, TRAINING_TEXT, GateSettings(kind=kind, steps=3, window=32))
    path = save_gates(tmp_path / "gates.safetensors", result)

    for source in (path, gates_to_bytes(result)):
        gates, metadata = load_gates(source, lm)
        assert gates.kind == kind
        assert torch.equal(gates.theta, result.gates.theta.detach())
        assert metadata["model"] == lm.name
        assert metadata["text_sha256"] == result.text_sha256
        assert json.loads(metadata["settings"])["kind"] == kind


def test_load_rejects_other_model(tiny_models, tmp_path):
    result = train_gates(tiny_models["llama_tied"], TRAINING_TEXT, GateSettings(steps=1, window=32))
    path = save_gates(tmp_path / "gates.safetensors", result)
    with pytest.raises(ValueError, match="blocks"):
        load_gates(path, tiny_models["gpt2"])


def test_load_rejects_non_gate_file(tmp_path):
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(2)}, str(other))
    with pytest.raises(ValueError, match="no rshift gates"):
        load_gates(other)
    with pytest.raises(ValueError, match="Not a readable"):
        load_gates(b"not a safetensors file at all")
