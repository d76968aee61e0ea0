"""Helpers for the Gates page: the default text, uploads, gate files and their metadata.

Nothing here trains or runs a model; the page calls ``rshift.gating`` for that.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict
from pathlib import Path

from rshift.gating import GateSettings, ResidualGates
from rshift.models import LoadedModel
from rshift.prompts import MAX_UPLOAD_BYTES, PromptFileError, decode_upload

TRAINING_TEXT_FILE = (
    Path(__file__).resolve().parent.parent / "assets" / "gates" / "training_text.txt"
)
KIND_LABELS = {
    "scalar": "scalar: one gate per block",
    "token": "token: a gate per block and position, computed from the stream",
}


def default_training_text() -> str:
    """Return the bundled training text, a few paragraphs long enough for the default settings."""
    return TRAINING_TEXT_FILE.read_text(encoding="utf-8").strip()


def read_text_upload(data: bytes, filename: str) -> tuple[str | None, str | None]:
    """Decode an uploaded text file into ``(text, None)``, or ``(None, message)`` if unusable."""
    if not data:
        return None, f"'{filename}' is empty (0 bytes). Upload a file with some text."
    if len(data) > MAX_UPLOAD_BYTES:
        return None, (
            f"'{filename}' is {len(data) / 2**20:.1f} MB, over the "
            f"{MAX_UPLOAD_BYTES // 2**20} MB upload limit. Upload a shorter text."
        )
    try:
        text, _ = decode_upload(data, filename)
    except PromptFileError as error:
        return None, str(error)
    if not text.strip():
        return None, f"'{filename}' contains only whitespace. Upload a file with some text."
    return text, None


def token_count(lm: LoadedModel, text: str) -> int:
    """Return how many tokens the model's tokenizer makes of ``text``."""
    return len(lm.tokenizer(text)["input_ids"])


def training_key(model: str, text: str, settings: GateSettings) -> str:
    """Return a digest of a training run's inputs, to tell when a result is stale."""
    payload = {"model": model, "text": text, "settings": asdict(settings)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def gate_values(gate_per_block: dict[int, float], num_layers: int) -> list[float]:
    """Return one gate per block 1..N; blocks without a gate count as 1 (unmodified)."""
    return [float(gate_per_block.get(block, 1.0)) for block in range(1, num_layers + 1)]


def gate_range(gate_per_block: dict[int, float]) -> str:
    """Describe the lowest and highest gate, such as 'lowest 0.962 (block 11), highest ...'."""
    low = min(gate_per_block, key=gate_per_block.__getitem__)
    high = max(gate_per_block, key=gate_per_block.__getitem__)
    return (
        f"lowest {gate_per_block[low]:.3f} (block {low}), "
        f"highest {gate_per_block[high]:.3f} (block {high})"
    )


def ungated_note(first_block: int) -> str:
    """Return a sentence saying that blocks before ``first_block`` show as 1, or ''."""
    if first_block <= 1:
        return ""
    if first_block == 2:
        return " Block 1 has no gate and shows as 1."
    joiner = "and" if first_block == 3 else "to"
    return f" Blocks 1 {joiner} {first_block - 1} have no gate and show as 1."


def loss(perplexity: float) -> float | None:
    """Return the loss in nats of a perplexity, or None when it is not finite."""
    return math.log(perplexity) if math.isfinite(perplexity) and perplexity > 0 else None


def fit_problems(gates: ResidualGates, metadata: dict[str, str], lm: LoadedModel) -> list[str]:
    """Return reasons why loaded gates cannot be used with ``lm`` (empty when they fit).

    ``rshift.gating.load_gates`` already checks the number of blocks; this adds
    the hidden size that token gates depend on.
    """
    problems = []
    if gates.weight is not None and gates.weight.shape[1] != lm.adapter.hidden_size:
        problems.append(
            f"These token gates expect a hidden size of {gates.weight.shape[1]}; "
            f"{lm.name} has {lm.adapter.hidden_size}."
        )
    return problems


def _number(value: str) -> str:
    try:
        return f"{float(value):.3f}"
    except ValueError:
        return value


def metadata_rows(metadata: dict[str, str]) -> list[dict[str, str]]:
    """Return a gate file's metadata as readable ``setting``/``value`` rows."""
    labels = {
        "model": "trained on model",
        "kind": "kind",
        "num_layers": "blocks",
        "first_block": "first gated block",
        "validation_before": "validation perplexity before",
        "validation_after": "validation perplexity after",
        "text_sha256": "training text (SHA-256)",
        "format": "file format",
    }
    rows = []
    for key, label in labels.items():
        if key not in metadata:
            continue
        value = metadata[key]
        if key.startswith("validation_"):
            value = _number(value)
        if key == "text_sha256":
            value = value[:16] + "…"
        rows.append({"setting": label, "value": value})
    try:
        settings = json.loads(metadata.get("settings", "{}"))
    except json.JSONDecodeError:
        settings = {}
    for name in ("steps", "learning_rate", "window", "validation_fraction", "seed"):
        if name in settings:
            rows.append({"setting": name.replace("_", " "), "value": str(settings[name])})
    return rows
