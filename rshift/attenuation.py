"""Residual attenuation: scale the stream a block carries over, keep its update.

For block L with strength alpha, mode ``block`` computes

    h_L = alpha * h_{L-1} + (Block_L(h_{L-1}) - h_{L-1})

which equals ``Block_L(h_{L-1}) - (1 - alpha) * h_{L-1}``, so one forward
hook on the block applies it. Mode ``attention`` scales only the skip path
around the attention sublayer, ``mlp`` only the one around the MLP sublayer;
there the hook sits on the module whose output is added to the stream (for
Gemma 3 that is the post-sublayer norm, so its extra norms stay in place).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rshift.adapters import Adapter
from rshift.hooks import HookSet, first_tensor, module_input, replace_first

Scope = Literal["single", "from"]
Mode = Literal["block", "attention", "mlp"]
SCOPES: tuple[str, ...] = ("single", "from")
MODES: tuple[str, ...] = ("block", "attention", "mlp")
ALPHA_RANGE = (0.0, 2.0)


@dataclass(frozen=True)
class Attenuation:
    """Scale the carried-over residual stream at block ``layer`` (1..N) by ``alpha``.

    ``scope='single'`` touches block ``layer`` only; ``scope='from'`` touches
    every block from ``layer`` to N.
    """

    layer: int
    alpha: float
    scope: Scope = "single"
    mode: Mode = "block"

    def __post_init__(self) -> None:
        low, high = ALPHA_RANGE
        if not low <= self.alpha <= high:
            raise ValueError(f"alpha must be in [{low}, {high}], got {self.alpha}.")
        if self.scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {self.scope!r}.")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}.")
        if isinstance(self.layer, bool) or not isinstance(self.layer, int):
            raise ValueError(f"layer must be an integer block number, got {self.layer!r}.")

    def validate(self, num_layers: int) -> Attenuation:
        """Raise ValueError unless ``layer`` is a block of a model with ``num_layers`` blocks."""
        if not 1 <= self.layer <= num_layers:
            raise ValueError(
                f"Attenuation layer must be in 1..{num_layers} for this model, got {self.layer}."
            )
        return self

    @property
    def is_identity(self) -> bool:
        return self.alpha == 1.0

    def blocks(self, num_layers: int) -> range:
        """Return the 1-based block numbers this attenuation touches."""
        last = num_layers if self.scope == "from" else self.layer
        return range(self.layer, last + 1)

    def to_dict(self) -> dict[str, object]:
        return {"layer": self.layer, "alpha": self.alpha, "scope": self.scope, "mode": self.mode}


def install_attenuation(hooks: HookSet, adapter: Adapter, attenuation: Attenuation | None) -> None:
    """Register the hooks that apply ``attenuation``; alpha = 1 registers none.

    Skipping the hooks at alpha = 1 is what makes it bit-identical to the
    unmodified model.
    """
    if attenuation is None or attenuation.is_identity:
        return
    attenuation.validate(adapter.num_layers)
    if attenuation.mode != "block" and not adapter.supports_sublayer_modes:
        raise ValueError(f"Mode {attenuation.mode!r} is not available for {adapter.family}.")

    carried = 1.0 - attenuation.alpha
    for number in attenuation.blocks(adapter.num_layers):
        index = number - 1
        if attenuation.mode == "block":
            hooks.post(adapter.blocks[index], _subtract_input(carried))
        elif attenuation.mode == "attention":
            _install_sublayer(
                hooks, adapter.blocks[index], adapter.attention_output[index], carried
            )
        else:
            _install_sublayer(
                hooks, adapter.mlp_residual_input[index], adapter.mlp_output[index], carried
            )


def _subtract_input(carried: float):
    def hook(args, kwargs, output):
        stream = module_input(args, kwargs)
        return replace_first(output, first_tensor(output) - carried * stream)

    return hook


def _install_sublayer(hooks: HookSet, stream_source, sublayer_output, carried: float) -> None:
    """Scale the skip path around one sublayer.

    ``stream_source`` is a module whose first input is the stream that the
    skip path carries around the sublayer; ``sublayer_output`` is the module
    whose output is added to that stream.
    """
    seen: dict[str, object] = {}

    def remember(args, kwargs):
        seen["stream"] = module_input(args, kwargs)

    def subtract(args, kwargs, output):
        return replace_first(output, first_tensor(output) - carried * seen["stream"])

    hooks.pre(stream_source, remember)
    hooks.post(sublayer_output, subtract)
