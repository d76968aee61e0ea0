"""Full analysis (forward, lens, every metric) against the naive Hugging Face lens."""

from __future__ import annotations

import torch

from benchmarks.memory import measure_peak
from benchmarks.naive import agreement, naive_lens
from benchmarks.timing import Stats, log, paired_ratio, time_interleaved
from rshift.analysis import analyze_text

# The naive lens peaked at about 4.3 times its float32 logits on SmolLM2
# (6.7 GB at 256 tokens, 1.6 GB at 64), measured with benchmarks.memory.
# A factor of 5 leaves a margin.
NAIVE_PEAK_FACTOR = 5
SPARE_BYTES = 1 << 30


def available_bytes() -> int | None:
    """Return MemAvailable from /proc/meminfo in bytes, or None where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def naive_fits(lm, tokens: int) -> tuple[bool, str]:
    """Decide whether the naive lens at ``tokens`` tokens fits in the free memory."""
    adapter = lm.adapter
    logits_bytes = 4 * (adapter.num_layers + 1) * tokens * adapter.vocab_size
    needed = NAIVE_PEAK_FACTOR * logits_bytes + SPARE_BYTES
    free = available_bytes()
    if free is None or free >= needed:
        return True, ""
    return False, (
        f"skipped: the naive lens needs about {needed / 2**30:.1f} GiB at {tokens} tokens "
        f"and only {free / 2**30:.1f} GiB is available"
    )


def run_analysis(lm, text: str, tokens: list[int], repeats: int, warmup: int, memory_repeats: int):
    """Time and measure both variants at each token count, one record per count.

    The smallest count also checks that both variants compute the same numbers.
    """
    records = []
    for count in tokens:
        log(f"[analysis] {count} tokens")
        record: dict[str, object] = {"tokens": count}
        fits, reason = naive_fits(lm, count)
        if not fits:
            log(f"  naive lens {reason}")
            record["skipped"] = reason
            records.append(record)
            continue

        variants = {
            "rshift": lambda count=count: analyze_text(lm, text, max_tokens=count),
            "naive": lambda count=count: naive_lens(lm.model, lm.tokenizer, text, count),
        }
        times = time_interleaved(variants, repeats, warmup, label=f"{count} tokens")
        record["rshift_seconds"] = times["rshift"]
        record["naive_seconds"] = times["naive"]
        record["time_ratio"] = paired_ratio(times["naive"], times["rshift"])

        if count == min(tokens):
            engine = analyze_text(lm, text, max_tokens=count).lens.metrics
            record["naive_vs_rshift_max_abs_diff"] = agreement(variants["naive"](), engine)

        if memory_repeats > 0:
            record.update(_memory(count, memory_repeats, torch.get_num_threads()))
        records.append(record)
    return records


def _memory(count: int, repeats: int, threads: int) -> dict[str, object]:
    peaks: dict[str, list[float]] = {"rshift": [], "naive": []}
    method = ""
    for repeat in range(repeats):
        for variant in ("rshift", "naive") if repeat % 2 == 0 else ("naive", "rshift"):
            result = measure_peak(variant, count, threads)
            peaks[variant].append(float(result["growth_bytes"]))
            method = str(result["method"])
        rshift_mib, naive_mib = peaks["rshift"][-1] / 2**20, peaks["naive"][-1] / 2**20
        log(
            f"  {count} tokens memory {repeat + 1}/{repeats}: "
            f"rshift {rshift_mib:.0f} MiB, naive {naive_mib:.0f} MiB"
        )
    rshift_peak, naive_peak = Stats.of(peaks["rshift"]), Stats.of(peaks["naive"])
    return {
        "rshift_peak_bytes": rshift_peak,
        "naive_peak_bytes": naive_peak,
        "memory_ratio": naive_peak.median / max(rshift_peak.median, 1.0),
        "memory_method": method,
    }
