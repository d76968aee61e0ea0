"""Capture the residual stream h_0..h_N, and recompute it from block L.

h_0 is the input of the first block (the embedding output with the model's
own scaling, plus position embeddings where the model has them). h_i is the
output of block i before the final norm. Hugging Face's last
``hidden_states`` entry is already normalised, so the stream is captured with
hooks on the blocks instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rshift.attenuation import Attenuation, install_attenuation
from rshift.hooks import HookSet, first_tensor, module_input
from rshift.models import LoadedModel


@dataclass
class BlockCall:
    """The extra arguments the model passed to one block (masks, rotary embeddings)."""

    args: tuple
    kwargs: dict


@dataclass
class Stream:
    """The residual stream of one text.

    Attributes:
        resid: ``(layers, positions, hidden)`` with ``layers = N + 1``, on the model's device.
        calls: one :class:`BlockCall` per block, kept so blocks L..N can be rerun alone.
        attenuation: the intervention active while the stream was computed, or None.
    """

    resid: torch.Tensor
    calls: list[BlockCall]
    attenuation: Attenuation | None = None


@torch.inference_mode()
def capture_stream(
    lm: LoadedModel, input_ids: torch.Tensor, attenuation: Attenuation | None = None
) -> Stream:
    """Run the model on ``input_ids`` ``(positions,)`` and capture h_0..h_N.

    Under an attenuation the captured states are the attenuated ones: the
    attenuation hook on each block is registered before the capture hook, and
    forward hooks run in registration order.
    """
    adapter = lm.adapter
    states: list[torch.Tensor | None] = [None] * (adapter.num_layers + 1)
    calls: list[BlockCall | None] = [None] * adapter.num_layers

    with HookSet() as hooks:
        install_attenuation(hooks, adapter, attenuation)
        for index, block in enumerate(adapter.blocks):
            hooks.pre(block, _record_call(states, calls, index))
            hooks.post(block, _record_output(states, index))
        adapter.backbone(input_ids=input_ids.view(1, -1).to(lm.device), use_cache=False)

    resid = torch.stack([state[0] for state in states])
    return Stream(resid=resid, calls=calls, attenuation=attenuation)


def _record_call(states, calls, index):
    def hook(args, kwargs):
        if index == 0:
            states[0] = module_input(args, kwargs).detach()
        calls[index] = BlockCall(args=args[1:], kwargs=dict(kwargs))

    return hook


def _record_output(states, index):
    def hook(args, kwargs, output):
        states[index + 1] = first_tensor(output).detach()

    return hook


@torch.inference_mode()
def recompute_from(
    lm: LoadedModel, base: Stream, start_block: int, attenuation: Attenuation | None
) -> Stream:
    """Rerun blocks ``start_block``..N from the stored h_{start_block - 1}.

    ``base`` must hold the stream up to ``start_block - 1`` as the new
    computation would produce it: the unmodified stream when ``start_block`` is
    the first attenuated block. The result equals a full recompute because
    every block is called with the same arguments the model passed it.
    """
    adapter = lm.adapter
    if not 1 <= start_block <= adapter.num_layers:
        raise ValueError(f"start_block must be in 1..{adapter.num_layers}, got {start_block}.")

    resid = base.resid.clone()
    hidden = resid[start_block - 1].unsqueeze(0)
    with HookSet() as hooks:
        install_attenuation(hooks, adapter, attenuation)
        for index in range(start_block - 1, adapter.num_layers):
            call = base.calls[index]
            hidden = first_tensor(adapter.blocks[index](hidden, *call.args, **call.kwargs))
            resid[index + 1] = hidden[0]
    return Stream(resid=resid, calls=base.calls, attenuation=attenuation)
