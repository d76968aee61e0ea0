"""Timing helpers: interleaved repeats, medians, paired ratios, and the machine's facts.

On a shared machine other processes slow some runs down. Running the
compared variants alternately (A B, then B A, ...) exposes both to the same
load, and the ratio of each adjacent pair is steadier than a ratio of two
medians taken minutes apart.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Stats:
    """Median, minimum and maximum of repeated measurements (seconds, bytes or a ratio)."""

    median: float
    min: float
    max: float
    runs: tuple[float, ...]

    @classmethod
    def of(cls, values: list[float]) -> Stats:
        if not values:
            raise ValueError("Stats need at least one measurement.")
        return cls(statistics.median(values), min(values), max(values), tuple(values))

    def to_json(self) -> dict[str, object]:
        return {"median": self.median, "min": self.min, "max": self.max, "runs": list(self.runs)}


def log(message: str) -> None:
    """Print a progress line to stderr, so stdout carries only the results table."""
    print(message, file=sys.stderr, flush=True)


def time_call(function: Callable[[], object]) -> float:
    """Return the wall-clock seconds of one call, discarding its result."""
    gc.collect()
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def time_interleaved(
    variants: dict[str, Callable[[], object]], repeats: int, warmup: int = 1, label: str = ""
) -> dict[str, Stats]:
    """Time each variant ``repeats`` times after ``warmup`` untimed calls, alternating the order.

    Returns:
        variant name -> :class:`Stats` of its wall-clock seconds.
    """
    names = list(variants)
    for index in range(warmup):
        for name in names:
            log(f"  {label} warm-up {index + 1}/{warmup}: {name}")
            variants[name]()

    runs: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        order = names if repeat % 2 == 0 else names[::-1]
        for name in order:
            runs[name].append(time_call(variants[name]))
        summary = ", ".join(f"{name} {runs[name][-1]:.3f} s" for name in names)
        log(f"  {label} repeat {repeat + 1}/{repeats}: {summary}")
    return {name: Stats.of(values) for name, values in runs.items()}


def paired_ratio(slow: Stats, fast: Stats) -> Stats:
    """Return the ratio ``slow / fast`` of each interleaved pair of runs."""
    return Stats.of([a / b for a, b in zip(slow.runs, fast.runs, strict=True)])


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, or the platform's description."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, object]:
    """Describe the machine and the software that the numbers were measured with."""
    import transformers

    return {
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda_available": torch.cuda.is_available(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
