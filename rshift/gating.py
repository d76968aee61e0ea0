"""Learnable residual gates, trained with every model weight frozen.

A gate g scales the stream a block carries over, like a fixed attenuation:
h_i = Block_i(h_{i-1}) - (1 - g) * h_{i-1}. Gates are parameterised as
g = 2 * sigmoid(theta), so they stay in (0, 2) and start at exactly 1 (the
unmodified model) when theta = 0.

Two kinds:

* ``scalar``: one gate per block.
* ``token``: per block, g_t = 2 * sigmoid(w . rmsnorm(h_{i-1}[t]) / d + b), a gate
  computed from the normalised stream at each position (d: hidden size).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from rshift.adapters import Adapter
from rshift.hooks import HookSet, first_tensor, module_input, replace_first
from rshift.models import LoadedModel, ProgressCallback

logger = logging.getLogger(__name__)

GateKind = Literal["scalar", "token"]
FORMAT_VERSION = "1"


class NotEnoughTextError(ValueError):
    """The text is too short to split into training and validation windows."""


@dataclass(frozen=True)
class GateSettings:
    """How to train gates; validated on construction."""

    kind: GateKind = "scalar"
    steps: int = 50
    learning_rate: float = 0.05
    window: int = 64
    validation_fraction: float = 0.2
    first_block: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("scalar", "token"):
            raise ValueError(f"Gate kind must be 'scalar' or 'token', got {self.kind!r}.")
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}.")
        if not 0 < self.learning_rate <= 10:
            raise ValueError(f"learning_rate must be in (0, 10], got {self.learning_rate}.")
        if self.window < 4:
            raise ValueError(f"window must be at least 4 tokens, got {self.window}.")
        if not 0.05 <= self.validation_fraction <= 0.5:
            raise ValueError(
                f"validation_fraction must be in [0.05, 0.5], got {self.validation_fraction}."
            )
        if self.first_block < 1:
            raise ValueError(f"first_block must be 1 or more, got {self.first_block}.")

    def min_tokens(self) -> int:
        """Return the fewest tokens that give one training and one validation window."""
        return math.ceil(self.window / self.validation_fraction) + 1


class ResidualGates(nn.Module):
    """Gates for blocks ``first_block``..N of one model.

    Attributes:
        theta: ``(gated,)`` scalar gate logits, or the biases of token gates.
        weight: ``(gated, hidden)`` token-gate weights (``token`` kind only).
    """

    def __init__(self, kind: GateKind, num_layers: int, hidden_size: int, first_block: int = 1):
        super().__init__()
        if not 1 <= first_block <= num_layers:
            raise ValueError(f"first_block must be in 1..{num_layers}, got {first_block}.")
        self.kind = kind
        self.num_layers = num_layers
        self.first_block = first_block
        gated = num_layers - first_block + 1
        self.theta = nn.Parameter(torch.zeros(gated))
        self.weight = nn.Parameter(torch.zeros(gated, hidden_size)) if kind == "token" else None

    def gate(self, index: int, stream: torch.Tensor) -> torch.Tensor:
        """Return the gate of gated block ``index`` for ``stream`` ``(batch, positions, hidden)``.

        The result broadcasts against the stream: a scalar, or ``(batch, positions, 1)``.
        """
        if self.weight is None:
            return 2 * torch.sigmoid(self.theta[index])
        normed = stream.float() * torch.rsqrt(stream.float().pow(2).mean(-1, keepdim=True) + 1e-6)
        # Averaging over the hidden size keeps one optimiser step from saturating the gate.
        logit = (normed @ self.weight[index]) / normed.shape[-1] + self.theta[index]
        return 2 * torch.sigmoid(logit)[..., None]

    def blocks(self) -> range:
        """Return the 1-based block numbers that have a gate."""
        return range(self.first_block, self.num_layers + 1)

    def install(self, hooks: HookSet, adapter: Adapter, record: dict | None = None) -> None:
        """Register one hook per gated block; ``record`` collects mean gate values if given."""
        for index, number in enumerate(self.blocks()):
            hooks.post(adapter.blocks[number - 1], self._hook(index, number, record))

    def _hook(self, index: int, number: int, record: dict | None):
        def hook(args, kwargs, output):
            stream = module_input(args, kwargs)
            gate = self.gate(index, stream)
            if record is not None:
                record.setdefault(number, []).append(float(gate.detach().float().mean()))
            updated = first_tensor(output) - (1 - gate.to(stream.dtype)) * stream
            return replace_first(output, updated)

        return hook

    def values(self) -> dict[int, float]:
        """Return the scalar gate per block (for token gates: the gate at a zero-mean input)."""
        with torch.no_grad():
            gates = 2 * torch.sigmoid(self.theta)
        return {number: float(g) for number, g in zip(self.blocks(), gates, strict=True)}


@dataclass
class GateTrainingResult:
    """Trained gates with their before/after validation perplexity and loss history."""

    gates: ResidualGates
    settings: GateSettings
    train_losses: list[float]
    validation_before: float
    validation_after: float
    gate_per_block: dict[int, float]
    text_sha256: str
    model_name: str
    train_tokens: int
    validation_tokens: int
    notes: list[str] = field(default_factory=list)

    def metadata(self) -> dict[str, str]:
        return {
            "format": FORMAT_VERSION,
            "model": self.model_name,
            "text_sha256": self.text_sha256,
            "settings": json.dumps(asdict(self.settings)),
            "num_layers": str(self.gates.num_layers),
            "validation_before": repr(self.validation_before),
            "validation_after": repr(self.validation_after),
        }


def split_windows(ids: torch.Tensor, settings: GateSettings) -> tuple[list, list]:
    """Cut ``ids`` into training windows (first part) and validation windows (last part).

    Raises:
        NotEnoughTextError: when either part would have no full window.
    """
    needed = settings.min_tokens()
    if ids.numel() < needed:
        raise NotEnoughTextError(
            f"Gate training needs at least {needed} tokens of text with a {settings.window}-token "
            f"window (roughly {needed * 3 // 4} words); this text has {ids.numel()}. "
            "Add more text or lower the window."
        )
    split = split_point(ids, settings)
    train = _windows(ids[:split], settings.window)
    validation = _windows(ids[split:], settings.window)
    return train, validation


def split_point(ids: torch.Tensor, settings: GateSettings) -> int:
    """Return the index of the first validation token."""
    return int(ids.numel() * (1 - settings.validation_fraction))


def _windows(ids: torch.Tensor, window: int) -> list[torch.Tensor]:
    """Cut windows of ``window + 1`` tokens: the inputs plus each one's next token."""
    pieces = [ids[i : i + window + 1] for i in range(0, max(1, ids.numel() - 1), window)]
    return [piece for piece in pieces if piece.numel() >= 2]


def window_loss(lm: LoadedModel, window: torch.Tensor, gates: ResidualGates | None) -> torch.Tensor:
    """Return the mean next-token cross-entropy of one window under ``gates``."""
    ids = window.view(1, -1).to(lm.device)
    with HookSet() as hooks:
        if gates is not None:
            gates.install(hooks, lm.adapter)
        logits = lm.model(input_ids=ids[:, :-1], use_cache=False).logits[0]
    return F.cross_entropy(logits.float(), ids[0, 1:])


@torch.no_grad()
def validation_perplexity(lm: LoadedModel, windows: list, gates: ResidualGates | None) -> float:
    """Return exp of the token-weighted mean cross-entropy over ``windows``."""
    total = 0.0
    count = 0
    for window in windows:
        total += float(window_loss(lm, window, gates)) * (window.numel() - 1)
        count += window.numel() - 1
    mean = total / count
    return math.exp(mean) if mean < 700 else math.inf


def train_gates(
    lm: LoadedModel,
    text: str,
    settings: GateSettings = GateSettings(),
    *,
    progress: ProgressCallback | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> GateTrainingResult:
    """Train gates on ``text`` with the model frozen; report the loss after each step."""
    ids = torch.tensor(lm.tokenizer(text)["input_ids"], dtype=torch.long)
    train, validation = split_windows(ids, settings)
    adapter = lm.adapter
    torch.manual_seed(settings.seed)
    gates = ResidualGates(
        settings.kind, adapter.num_layers, adapter.hidden_size, settings.first_block
    )
    gates.to(lm.device)
    optimizer = torch.optim.Adam(gates.parameters(), lr=settings.learning_rate)

    before = validation_perplexity(lm, validation, None)
    losses: list[float] = []
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(settings.seed))
    with torch.enable_grad():
        for step in range(settings.steps):
            window = train[int(order[step % len(train)])]
            loss = window_loss(lm, window, gates)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            if on_step:
                on_step(step + 1, losses[-1])
            if progress:
                progress((step + 1) / settings.steps, f"step {step + 1}: loss {losses[-1]:.3f}")

    after = validation_perplexity(lm, validation, gates)
    logger.info("Gate training: validation perplexity %.3f -> %.3f", before, after)
    notes = []
    if after > before:
        notes.append(
            f"Validation perplexity rose from {before:.3f} to {after:.3f}: these gates fit the "
            "training windows but not the held-out text. Train on more text or for fewer steps."
        )
        logger.warning(notes[-1])
    return GateTrainingResult(
        gates=gates,
        settings=settings,
        train_losses=losses,
        validation_before=before,
        validation_after=after,
        gate_per_block=mean_gates(lm, validation, gates),
        text_sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        model_name=lm.name,
        train_tokens=split_point(ids, settings),
        validation_tokens=ids.numel() - split_point(ids, settings),
        notes=notes,
    )


@torch.no_grad()
def mean_gates(lm: LoadedModel, windows: list, gates: ResidualGates) -> dict[int, float]:
    """Return each block's gate averaged over the positions of ``windows``."""
    if gates.kind == "scalar":
        return gates.values()
    record: dict[int, list[float]] = {}
    for window in windows:
        with HookSet() as hooks:
            gates.install(hooks, lm.adapter, record)
            lm.model(input_ids=window.view(1, -1)[:, :-1].to(lm.device), use_cache=False)
    return {number: sum(values) / len(values) for number, values in record.items()}


def save_gates(path: str | Path, result: GateTrainingResult) -> Path:
    """Write the gates as safetensors with model, text hash and settings as metadata."""
    from safetensors.torch import save_file

    tensors = {"theta": result.gates.theta.detach().cpu().contiguous()}
    if result.gates.weight is not None:
        tensors["weight"] = result.gates.weight.detach().cpu().contiguous()
    metadata = result.metadata()
    metadata["kind"] = result.gates.kind
    metadata["first_block"] = str(result.gates.first_block)
    metadata["hidden_size"] = str(
        result.gates.weight.shape[1] if result.gates.weight is not None else 0
    )
    save_file(tensors, str(path), metadata=metadata)
    return Path(path)


def gates_to_bytes(result: GateTrainingResult) -> bytes:
    """Serialise the gates to safetensors bytes, for a download button."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = save_gates(Path(folder) / "gates.safetensors", result)
        return path.read_bytes()


def load_gates(source: str | Path | bytes, lm: LoadedModel | None = None):
    """Read gates saved by :func:`save_gates`; check they fit ``lm`` when given.

    Returns:
        ``(gates, metadata)``.

    Raises:
        ValueError: for a file that is not a gate file or does not fit the model.
    """
    from safetensors.torch import load, load_file

    try:
        if isinstance(source, bytes):
            tensors = load(source)
            metadata = _metadata_from_bytes(source)
        else:
            tensors = load_file(str(source))
            metadata = _metadata_from_path(Path(source))
    except Exception as error:  # safetensors raises its own types for damaged files
        raise ValueError(f"Not a readable safetensors gate file: {error}") from error

    if metadata.get("format") != FORMAT_VERSION or "theta" not in tensors:
        raise ValueError(
            "This safetensors file contains no rshift gates (metadata or theta missing)."
        )
    num_layers = int(metadata["num_layers"])
    weight = tensors.get("weight")
    gates = ResidualGates(
        metadata.get("kind", "scalar"),
        num_layers,
        weight.shape[1] if weight is not None else 1,
        int(metadata.get("first_block", 1)),
    )
    gates.load_state_dict({k: v for k, v in tensors.items()}, strict=True)
    if lm is not None and lm.adapter.num_layers != num_layers:
        raise ValueError(
            f"These gates were trained for a model with {num_layers} blocks "
            f"({metadata.get('model')}); the loaded model has {lm.adapter.num_layers}."
        )
    return gates, metadata


def _metadata_from_bytes(data: bytes) -> dict[str, str]:
    header_size = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + header_size]).get("__metadata__", {})


def _metadata_from_path(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata() or {})
