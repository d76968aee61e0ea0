"""Helpers for the Batch page: reading prompts, the summary table, notices and downloads.

Nothing here runs a model; the page calls ``rshift.batch.analyze_prompts`` and
hands its ``BatchResult`` to these functions to turn it into a table and text.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rshift.attenuation import Attenuation
from rshift.batch import BatchResult
from rshift.prompts import PromptFileError, parse_prompt_file

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "batch"
SAMPLE_FILE = ASSETS / "sample_prompts.txt"
FORMAT_SAMPLES = {
    "sample_prompts.txt": "one prompt per line, or paragraphs separated by a blank line",
    "sample_prompts.csv": "a header row with a 'prompt' or 'text' column",
    "sample_prompts.jsonl": "one JSON string, or object with a 'prompt' key, per line",
}
MIME_TYPES = {".txt": "text/plain", ".csv": "text/csv", ".jsonl": "application/jsonl"}


@dataclass(frozen=True)
class PromptInput:
    """Prompts ready for a batch run, or the reason there are none.

    Attributes:
        prompts: stripped, non-empty prompts in file order.
        warnings: notices about skipped or dropped content, shown as they are.
        error: what went wrong and what to do, or None.
        source: where the prompts came from, for captions.
    """

    prompts: list[str]
    warnings: list[str]
    error: str | None
    source: str


def read_upload(data: bytes, filename: str) -> PromptInput:
    """Parse an uploaded prompt file, reporting a ``PromptFileError`` in ``error``."""
    source = f"'{filename}'"
    try:
        parsed = parse_prompt_file(data, filename)
    except PromptFileError as error:
        return PromptInput([], [], str(error), source)
    return PromptInput(parsed.prompts, parsed.warnings, None, source)


def sample_prompts() -> PromptInput:
    """Return the bundled sample prompts."""
    parsed = read_upload(SAMPLE_FILE.read_bytes(), SAMPLE_FILE.name)
    return PromptInput(parsed.prompts, parsed.warnings, parsed.error, "the sample prompts")


def format_sample(name: str) -> bytes:
    """Return the bytes of one bundled example file (``FORMAT_SAMPLES`` names them)."""
    return (ASSETS / name).read_bytes()


def remembered_attenuation(num_layers: int, recall) -> Attenuation | None:
    """Return the Attenuate page's remembered setting if it fits this model, else None.

    ``recall`` is ``ui.state.recall``. An alpha of 1 counts as no attenuation.
    """
    layer, alpha = recall("layer"), recall("alpha")
    if layer is None or alpha is None:
        return None
    try:
        attenuation = Attenuation(
            layer=int(layer),
            alpha=float(alpha),
            scope=recall("scope", "single"),
            mode=recall("mode", "block"),
        ).validate(num_layers)
    except (TypeError, ValueError):
        return None
    return None if attenuation.is_identity else attenuation


def describe_attenuation(attenuation: Attenuation) -> str:
    """Return a short human description such as 'alpha 0.5 at block 24 only'."""
    where = (
        f"block {attenuation.layer} only"
        if attenuation.scope == "single"
        else f"blocks {attenuation.layer} onwards"
    )
    mode = "" if attenuation.mode == "block" else f", {attenuation.mode} skip path"
    return f"alpha {attenuation.alpha:g} at {where}{mode}"


def batch_key(
    model: str,
    prompts: list[str],
    max_tokens: int,
    attenuation: Attenuation | None,
    exclude_first: bool,
) -> str:
    """Return a digest of every input of a batch run, to tell when a result is stale."""
    payload = {
        "model": model,
        "prompts": prompts,
        "max_tokens": max_tokens,
        "attenuation": attenuation.to_dict() if attenuation else None,
        "exclude_first": exclude_first,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _finite(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _row_notes(row: dict, attenuated: bool) -> str:
    notes = []
    if row["dropped_tokens"]:
        notes.append(f"truncated: {row['dropped_tokens']} tokens dropped")
    if row["median_shift_layer"] is None:
        notes.append("no position shifts")
    if _finite(row["perplexity"]) is None and row["perplexity"] is not None:
        notes.append("perplexity diverged")
    if row["perplexity"] is None:
        notes.append("one token: no perplexity")
    attenuated_value = row["perplexity_attenuated"] if attenuated else None
    if attenuated_value is not None and _finite(attenuated_value) is None:
        notes.append("diverged under the attenuation")
    return "; ".join(notes)


def summary_frame(result: BatchResult) -> pd.DataFrame:
    """Return one display row per analysed prompt; non-finite numbers become empty cells.

    Columns: ``#`` (1-based prompt number), ``prompt``, ``tokens``,
    ``median shift layer``, ``relative depth``, ``perplexity``, ``attenuated
    perplexity`` (only with an attenuation) and ``notes``.
    """
    attenuated = result.attenuation is not None
    records = []
    for row in result.rows:
        record = {
            "#": int(row["index"]) + 1,
            "prompt": row["prompt"],
            "tokens": int(row["tokens"]),
            "median shift layer": _finite(row["median_shift_layer"]),
            "relative depth": _finite(row["median_relative_shift"]),
            "perplexity": _finite(row["perplexity"]),
        }
        if attenuated:
            record["attenuated perplexity"] = _finite(row["perplexity_attenuated"])
        record["notes"] = _row_notes(row, attenuated)
        records.append(record)
    return pd.DataFrame.from_records(records)


def truncation_notice(result: BatchResult, token_cap: int) -> str | None:
    """Return a notice naming the prompts cut at the token cap, or None."""
    cut = [row for row in result.rows if row["dropped_tokens"]]
    if not cut:
        return None
    listed = ", ".join(f"#{row['index'] + 1} ({row['dropped_tokens']} dropped)" for row in cut[:8])
    more = f" and {len(cut) - 8} more" if len(cut) > 8 else ""
    prompts = "prompt was" if len(cut) == 1 else "prompts were"
    return (
        f"{len(cut)} {prompts} longer than the token cap of {token_cap} and analysed only up "
        f"to it: {listed}{more}. Raise the token cap in the sidebar to analyse them whole."
    )


def skipped_notice(result: BatchResult) -> str | None:
    """Return a notice naming the prompts that could not be analysed, or None."""
    if not result.skipped:
        return None
    listed = "; ".join(f"#{index + 1}: {reason}" for index, reason in result.skipped[:5])
    more = f"; and {len(result.skipped) - 5} more" if len(result.skipped) > 5 else ""
    return f"Skipped {len(result.skipped)} prompt(s): {listed}{more}"


def _json_safe(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def json_bytes(result: BatchResult) -> bytes:
    """Return the batch as strict JSON (a diverged perplexity becomes null)."""
    return json.dumps(_json_safe(result.to_json()), indent=2).encode("utf-8")
