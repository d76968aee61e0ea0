"""Residual attenuation: identity, exactness, incremental recompute, isolation."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch

from rshift.analysis import LiveAnalysis, analyze_text
from rshift.attenuation import Attenuation
from rshift.intervention import compare, greedy_continuation, sweep
from rshift.stream import capture_stream
from tests.conftest import SAMPLE_TEXT


def hook_count(model: torch.nn.Module) -> int:
    return sum(
        len(module._forward_hooks) + len(module._forward_pre_hooks) for module in model.modules()
    )


def test_alpha_one_is_bit_identical(tiny_model):
    ids = torch.tensor(tiny_model.tokenizer(SAMPLE_TEXT)["input_ids"])
    plain = capture_stream(tiny_model, ids).resid
    for scope in ("single", "from"):
        for mode in ("block", "attention", "mlp"):
            same = capture_stream(tiny_model, ids, Attenuation(2, 1.0, scope, mode)).resid
            assert torch.equal(plain, same), (scope, mode)


def test_alpha_zero_drops_block_skip(tiny_model):
    """With alpha = 0 at block L, h_L is the block's own update Block_L(h) - h."""
    ids = torch.tensor(tiny_model.tokenizer(SAMPLE_TEXT)["input_ids"])[None]
    with torch.no_grad():
        hidden = tiny_model.model(ids, output_hidden_states=True).hidden_states
    layer = 2
    expected_update = hidden[layer] - hidden[layer - 1]

    attenuated = capture_stream(tiny_model, ids[0], Attenuation(layer, 0.0)).resid
    torch.testing.assert_close(attenuated[layer], expected_update[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(attenuated[layer - 1], hidden[layer - 1][0], rtol=0, atol=1e-6)


def test_alpha_scales_carried_stream(tiny_models):
    lm = tiny_models["llama_tied"]
    ids = torch.tensor(lm.tokenizer(SAMPLE_TEXT)["input_ids"])[None]
    with torch.no_grad():
        hidden = lm.model(ids, output_hidden_states=True).hidden_states
    layer, alpha = 3, 0.3
    expected = alpha * hidden[layer - 1] + (hidden[layer] - hidden[layer - 1])

    attenuated = capture_stream(lm, ids[0], Attenuation(layer, alpha)).resid
    torch.testing.assert_close(attenuated[layer], expected[0], rtol=0, atol=1e-5)


def test_mlp_mode_drops_mlp_skip(tiny_models):
    """Mode mlp with alpha = 0 leaves only the MLP update: h_L = Block_L(h) - h_mid."""
    lm = tiny_models["llama_tied"]
    layer = 2
    block = lm.model.model.layers[layer - 1]
    seen = {}
    handle = block.post_attention_layernorm.register_forward_pre_hook(
        lambda module, args: seen.__setitem__("mid", args[0].detach())
    )
    ids = torch.tensor(lm.tokenizer(SAMPLE_TEXT)["input_ids"])[None]
    try:
        with torch.no_grad():
            hidden = lm.model(ids, output_hidden_states=True).hidden_states
    finally:
        handle.remove()

    attenuated = capture_stream(lm, ids[0], Attenuation(layer, 0.0, mode="mlp")).resid
    expected = hidden[layer][0] - seen["mid"][0]
    torch.testing.assert_close(attenuated[layer], expected, rtol=0, atol=1e-5)


def test_sublayer_modes_differ_from_block(tiny_model):
    ids = torch.tensor(tiny_model.tokenizer(SAMPLE_TEXT)["input_ids"])
    results = {
        mode: capture_stream(tiny_model, ids, Attenuation(2, 0.5, mode=mode)).resid[-1]
        for mode in ("block", "attention", "mlp")
    }
    assert not torch.allclose(results["block"], results["attention"])
    assert not torch.allclose(results["block"], results["mlp"])
    assert not torch.allclose(results["attention"], results["mlp"])


@pytest.mark.parametrize("scope", ["single", "from"])
@pytest.mark.parametrize("mode", ["block", "attention", "mlp"])
def test_incremental_equals_full(tiny_model, scope, mode):
    live = LiveAnalysis(tiny_model, SAMPLE_TEXT)
    for layer in (1, 3, tiny_model.adapter.num_layers):
        attenuation = Attenuation(layer, 0.4, scope, mode)
        fast = live.run(attenuation)
        full = analyze_text(tiny_model, SAMPLE_TEXT, attenuation=attenuation)
        for name, values in full.lens.metrics.items():
            np.testing.assert_allclose(
                fast.lens.metrics[name], values, rtol=0, atol=1e-5, err_msg=f"{name} L={layer}"
            )
        assert fast.perplexity == pytest.approx(full.perplexity, rel=1e-5)


def test_final_matches_full_analysis(tiny_model):
    live = LiveAnalysis(tiny_model, SAMPLE_TEXT)
    attenuation = Attenuation(2, 0.25, "from")
    quick = live.final(attenuation)
    full = live.run(attenuation)
    np.testing.assert_allclose(quick.nll, full.nll, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(quick.top_ids, full.lens.top_ids[-1])


def test_hooks_removed_after_exception(tiny_model, monkeypatch):
    live = LiveAnalysis(tiny_model, SAMPLE_TEXT)
    before = hook_count(tiny_model.model)
    last_block = tiny_model.adapter.blocks[-1]

    def broken_forward(*args, **kwargs):
        raise RuntimeError("simulated failure inside a block")

    monkeypatch.setattr(last_block, "forward", broken_forward)
    with pytest.raises(RuntimeError, match="simulated failure"):
        live.run(Attenuation(1, 0.5, mode="attention"))
    with pytest.raises(RuntimeError, match="simulated failure"):
        capture_stream(tiny_model, live.text.ids, Attenuation(2, 0.5, "from", "mlp"))
    assert hook_count(tiny_model.model) == before


def test_hooks_removed_after_success(tiny_model):
    before = hook_count(tiny_model.model)
    live = LiveAnalysis(tiny_model, SAMPLE_TEXT)
    live.run(Attenuation(2, 0.5, "from", "attention"))
    greedy_continuation(tiny_model, live.text.ids, Attenuation(1, 0.5), 3)
    assert hook_count(tiny_model.model) == before


def test_threads_do_not_interfere(tiny_models):
    lm = tiny_models["gemma3"]
    ids = torch.tensor(lm.tokenizer(SAMPLE_TEXT * 3)["input_ids"])
    settings = [Attenuation(1, 0.0, "from"), Attenuation(3, 0.5, mode="mlp"), None]
    alone = [capture_stream(lm, ids, setting).resid for setting in settings]

    start = threading.Barrier(len(settings))
    together: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(settings))}

    def worker(index: int) -> None:
        start.wait()
        for _ in range(5):
            together[index].append(capture_stream(lm, ids, settings[index]).resid)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(settings))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    for index, expected in enumerate(alone):
        assert len(together[index]) == 5
        for result in together[index]:
            assert torch.equal(result, expected), settings[index]


@pytest.mark.parametrize(
    ("layer", "alpha", "phrase"),
    [
        (0, 0.5, "1..5"),
        (6, 0.5, "1..5"),
        (2, -0.1, "[0.0, 2.0]"),
        (2, 2.5, "[0.0, 2.0]"),
    ],
)
def test_out_of_range_rejected(tiny_models, layer, alpha, phrase):
    live = LiveAnalysis(tiny_models["llama_tied"], SAMPLE_TEXT)
    with pytest.raises(ValueError) as error:
        live.run(Attenuation(layer, alpha))
    assert phrase in str(error.value)


def test_invalid_scope_and_mode_rejected():
    with pytest.raises(ValueError, match="scope"):
        Attenuation(1, 0.5, scope="everywhere")
    with pytest.raises(ValueError, match="mode"):
        Attenuation(1, 0.5, mode="norm")


def test_zero_at_last_block_finite_or_flagged(tiny_model):
    live = LiveAnalysis(tiny_model, SAMPLE_TEXT)
    result = live.run(Attenuation(tiny_model.adapter.num_layers, 0.0))
    data = result.to_json()
    if result.perplexity is not None and math.isfinite(result.perplexity):
        assert data["perplexity"] == pytest.approx(result.perplexity)
    else:
        assert data["perplexity"] is None
        assert "diverged" in data["perplexity_note"]
    assert not math.isnan(result.perplexity)


def test_compare_reports_both_sides(tiny_models):
    live = LiveAnalysis(tiny_models["llama_tied"], SAMPLE_TEXT)
    result = compare(live, Attenuation(2, 0.2), continuation_tokens=4)
    assert result.baseline.attenuation is None
    assert result.attenuated.attenuation == Attenuation(2, 0.2)
    assert result.loss_change.shape == (len(live.text) - 1,)
    assert len(result.top_baseline) == len(live.text)
    assert len(result.top_attenuated[0]) == 5
    assert result.perplexity_change == pytest.approx(
        result.attenuated.perplexity / result.baseline.perplexity - 1
    )
    assert isinstance(result.continuation_attenuated, str)


def test_continuation_deterministic(tiny_models):
    lm = tiny_models["gpt2"]
    ids = torch.tensor(lm.tokenizer(SAMPLE_TEXT)["input_ids"])
    first = greedy_continuation(lm, ids, Attenuation(2, 0.5), 6)
    second = greedy_continuation(lm, ids, Attenuation(2, 0.5), 6)
    assert first == second
    assert first != "" or lm.tokenizer.eos_token_id is not None


def test_continuation_cache_matches_full_forward(tiny_models):
    """Cached decoding under an attenuation picks the same tokens as full recomputation."""
    lm = tiny_models["llama_tied"]
    ids = torch.tensor(lm.tokenizer(SAMPLE_TEXT)["input_ids"])
    attenuation = Attenuation(2, 0.3, "from")
    cached = greedy_continuation(lm, ids, attenuation, 5)

    tokens = ids.clone()
    for _ in range(5):
        stream = capture_stream(lm, tokens, attenuation)
        from rshift.lens import lens_logits

        tokens = torch.cat([tokens, lens_logits(lm.adapter, stream.resid[-1, -1:]).argmax(-1)])
    assert cached == lm.tokenizer.decode(tokens[ids.numel() :].tolist())


def test_sweep_landscape(tiny_models):
    live = LiveAnalysis(tiny_models["llama_tied"], SAMPLE_TEXT)
    fractions = []
    landscape = sweep(live, [1, 3, 5], [0.0, 0.5, 1.0], progress=lambda f, m: fractions.append(f))
    assert landscape.perplexity.shape == (3, 3)
    assert not np.isnan(landscape.perplexity).any()
    np.testing.assert_allclose(landscape.perplexity[:, 2], live.baseline.perplexity, rtol=1e-6)
    expected = live.run(Attenuation(3, 0.5)).perplexity
    assert landscape.perplexity[1, 1] == pytest.approx(expected, rel=1e-5)
    assert fractions[-1] == pytest.approx(1.0)
    assert len(fractions) == 9
    assert not landscape.cancelled


def test_sweep_cancellation(tiny_models):
    live = LiveAnalysis(tiny_models["llama_tied"], SAMPLE_TEXT)
    stop = threading.Event()
    calls = []

    def progress(fraction, message):
        calls.append(fraction)
        if len(calls) == 2:
            stop.set()

    landscape = sweep(live, [1, 2, 3], [0.0, 0.5], progress=progress, cancel=stop)
    assert landscape.cancelled
    assert np.isfinite(landscape.perplexity).sum() == 2
    assert np.isnan(landscape.perplexity).sum() == 4
    rows = landscape.to_rows()
    assert rows[-1]["perplexity"] is None
    assert rows[-1]["diverged"] is False


def test_sweep_rejects_bad_layer(tiny_models):
    live = LiveAnalysis(tiny_models["llama_tied"], SAMPLE_TEXT)
    with pytest.raises(ValueError, match=r"1\.\.5"):
        sweep(live, [0, 1], [0.5])
