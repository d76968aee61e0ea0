"""Lens matmul throughput as a fraction of a plain float32 matmul measured in the same run.

The reference multiplies ``REFERENCE_ROWS`` random rows by the model's own
unembedding matrix (``torch.mm`` into a preallocated output, so no page
faults are counted). It has the lens matmul's inner size and vocabulary, with
enough rows for the BLAS kernel to reach its speed. A square 2048 matmul
is reported beside it as the machine's best case. The lens is timed as a
whole (``compute_lens``) and, through the torch profiler, by the time spent
inside its matrix products (``aten::mm`` and ``aten::addmm``).
"""

from __future__ import annotations

import time

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.timing import Stats, log
from rshift.lens import DEFAULT_CHUNK_BYTES, chunk_rows, compute_lens
from rshift.stream import capture_stream
from rshift.tokens import tokenize

REFERENCE_ROWS = 1024
SQUARE_SIZE = 2048
MATMUL_OPS = ("aten::mm", "aten::addmm")


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def _profiled_lens(adapter, resid, ids) -> tuple[float, float]:
    """Return (whole lens seconds, seconds inside matrix products) of one compute_lens call."""
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        start = time.perf_counter()
        compute_lens(adapter, resid, ids)
        whole = time.perf_counter() - start
    matmul_us = sum(
        event.cpu_time_total for event in profiler.key_averages() if event.key in MATMUL_OPS
    )
    return whole, matmul_us / 1e6


@torch.inference_mode()
def run_throughput(lm, text: str, tokens: int, repeats: int, warmup: int) -> dict[str, object]:
    """Measure reference matmuls and the lens, interleaved, and return GFLOP/s and fractions."""
    adapter = lm.adapter
    weight = adapter.unembedding_weight
    ids = tokenize(lm.tokenizer, text, tokens).ids
    resid = capture_stream(lm, ids).resid
    lens_rows = resid.shape[0] * resid.shape[1]
    generator = torch.Generator().manual_seed(0)
    reference_input = torch.randn(REFERENCE_ROWS, adapter.hidden_size, generator=generator)
    reference_out = torch.zeros(REFERENCE_ROWS, adapter.vocab_size)
    square_a = torch.randn(SQUARE_SIZE, SQUARE_SIZE, generator=generator)
    square_b = torch.randn(SQUARE_SIZE, SQUARE_SIZE, generator=generator)
    square_out = torch.zeros(SQUARE_SIZE, SQUARE_SIZE)

    steps = {
        "reference": lambda: _timed(
            lambda: torch.mm(reference_input, weight.t(), out=reference_out)
        ),
        "square": lambda: _timed(lambda: torch.mm(square_a, square_b, out=square_out)),
        "lens": lambda: _profiled_lens(adapter, resid, ids),
    }
    for _ in range(warmup):
        for step in steps.values():
            step()
    runs: dict[str, list] = {name: [] for name in steps}
    for repeat in range(repeats):
        for name, step in steps.items():
            runs[name].append(step())
        whole, matmul = runs["lens"][-1]
        log(
            f"[throughput] repeat {repeat + 1}/{repeats}: lens {whole:.3f} s, matmul {matmul:.3f} s"
        )

    gflop = {
        "reference": 2 * REFERENCE_ROWS * adapter.hidden_size * adapter.vocab_size / 1e9,
        "square": 2 * SQUARE_SIZE**3 / 1e9,
        "lens": 2 * lens_rows * adapter.hidden_size * adapter.vocab_size / 1e9,
    }
    reference = Stats.of([gflop["reference"] / t for t in runs["reference"]])
    square = Stats.of([gflop["square"] / t for t in runs["square"]])
    lens_whole = Stats.of([gflop["lens"] / whole for whole, _ in runs["lens"]])
    lens_matmul = Stats.of([gflop["lens"] / matmul for _, matmul in runs["lens"]])
    # Pair each lens run with the reference run next to it, as for time ratios.
    matmul_fraction = Stats.of(
        [b / a for a, b in zip(reference.runs, lens_matmul.runs, strict=True)]
    )
    whole_fraction = Stats.of([b / a for a, b in zip(reference.runs, lens_whole.runs, strict=True)])
    return {
        "tokens": tokens,
        "lens_rows": lens_rows,
        "chunk_rows": chunk_rows(adapter.vocab_size, DEFAULT_CHUNK_BYTES),
        "lens_gflop": gflop["lens"],
        "reference_shape": [REFERENCE_ROWS, adapter.hidden_size, adapter.vocab_size],
        "reference_gflops": reference,
        "square_gflops": square,
        "lens_seconds": Stats.of([whole for whole, _ in runs["lens"]]),
        "lens_matmul_seconds": Stats.of([matmul for _, matmul in runs["lens"]]),
        "lens_gflops": lens_whole,
        "lens_matmul_gflops": lens_matmul,
        "matmul_fraction": matmul_fraction,
        "whole_lens_fraction": whole_fraction,
    }
