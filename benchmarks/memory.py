"""Peak memory of one full analysis, measured in a fresh process per run.

Each measurement starts ``python -m benchmarks.memory VARIANT TOKENS THREADS``.
That process loads the model, runs the variant once on a short text so lazy
initialisation is done, and records its resident set size (RSS) as the
baseline. It then resets the kernel's peak-RSS mark by writing 5 to
``/proc/self/clear_refs``, runs the variant on the full text, and reads the
new peak (``VmHWM`` in ``/proc/self/status``). The peak growth is
``VmHWM - baseline``: the most memory the analysis itself held at once,
whatever the model load used before.

Where ``clear_refs`` cannot be written (not Linux), the probe falls back to
``ru_maxrss`` from ``getrusage``. That mark cannot be reset, so the growth
reads as zero whenever the model load peaked higher than the analysis did.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import resource
import subprocess
import sys
from pathlib import Path

import torch

WARMUP_TOKENS = 16
REPO_ROOT = Path(__file__).resolve().parent.parent


def measure_peak(variant: str, tokens: int, threads: int) -> dict[str, object]:
    """Run one probe process and return its record (bytes and the method used).

    Raises:
        RuntimeError: when the probe fails; the message carries its stderr tail.
    """
    command = [sys.executable, "-m", "benchmarks.memory", variant, str(tokens), str(threads)]
    completed = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"Memory probe {variant} at {tokens} tokens failed with exit code "
            f"{completed.returncode}: {completed.stderr[-2000:]}"
        )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


def _max_rss_bytes() -> int:
    # ru_maxrss is in kibibytes on Linux and in bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _variant(name: str):
    from benchmarks.naive import naive_lens
    from rshift.analysis import analyze_text

    if name == "rshift":
        return lambda lm, text, count: analyze_text(lm, text, max_tokens=count)
    if name == "naive":
        return lambda lm, text, count: naive_lens(lm.model, lm.tokenizer, text, count)
    raise ValueError(f"Unknown memory variant {name!r}. Use 'rshift' or 'naive'.")


def probe(variant: str, tokens: int, threads: int) -> dict[str, object]:
    """Measure the peak RSS growth of one run of ``variant`` at ``tokens`` tokens."""
    from benchmarks.text import text_with_tokens
    from rshift.models import load_model

    torch.set_num_threads(threads)
    run = _variant(variant)
    lm = load_model("smollm2-135m", device="cpu")
    text = text_with_tokens(lm.tokenizer, tokens)
    run(lm, text, WARMUP_TOKENS)
    gc.collect()

    baseline = (_status_kib("VmRSS") or 0) * 1024
    if _reset_peak():
        run(lm, text, tokens)
        peak = (_status_kib("VmHWM") or 0) * 1024
        method = "VmHWM after clear_refs reset"
    else:
        baseline = max(baseline, _max_rss_bytes())
        run(lm, text, tokens)
        peak = _max_rss_bytes()
        method = "ru_maxrss, which cannot be reset and may read low"
    return {
        "variant": variant,
        "tokens": tokens,
        "baseline_bytes": baseline,
        "peak_bytes": peak,
        "growth_bytes": max(0, peak - baseline),
        "method": method,
        "pid": os.getpid(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Measure the peak memory of one analysis.")
    parser.add_argument("variant", choices=["rshift", "naive"])
    parser.add_argument("tokens", type=int)
    parser.add_argument("threads", type=int)
    arguments = parser.parse_args()
    logging.getLogger("rshift").setLevel(logging.ERROR)
    print(json.dumps(probe(arguments.variant, arguments.tokens, arguments.threads)))


if __name__ == "__main__":
    main()
