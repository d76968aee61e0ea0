"""Time per optimiser step of gate training (forward, backward and Adam on one window)."""

from __future__ import annotations

import time
from itertools import pairwise

from benchmarks.timing import Stats, log
from rshift.gating import GateSettings, train_gates

WINDOW = 64


def run_gating(lm, text: str, steps: int) -> dict[str, object]:
    """Train each gate kind for ``steps + 1`` steps and time steps 2..steps+1.

    ``train_gates`` reports each finished step through ``on_step``, so the
    time between two reports is one step. The first step has no report before it,
    so it serves as the warm-up. Validation before and after training is not
    part of any step.
    """
    kinds = {}
    for kind in ("scalar", "token"):
        stamps: list[float] = []
        settings = GateSettings(kind=kind, steps=steps + 1, window=WINDOW)
        started = time.perf_counter()
        result = train_gates(lm, text, settings, on_step=_stamper(stamps))
        total = time.perf_counter() - started
        per_step = Stats.of([later - earlier for earlier, later in pairwise(stamps)])
        log(f"[gating] {kind}: median step {per_step.median:.3f} s over {steps} steps")
        kinds[kind] = {
            "step_seconds": per_step,
            "call_seconds": total,
            "train_tokens": result.train_tokens,
            "validation_tokens": result.validation_tokens,
        }
    return {"window": WINDOW, "steps_timed": steps, "kinds": kinds}


def _stamper(stamps: list[float]):
    """Return an ``on_step`` callback that appends the current time to ``stamps``."""

    def on_step(step: int, loss: float) -> None:
        stamps.append(time.perf_counter())

    return on_step
