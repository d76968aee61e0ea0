"""Run every rshift benchmark on the bundled SmolLM2 and print one table.

Usage::

    python -m benchmarks                      # the full run
    python -m benchmarks --quick              # a smoke run at 64 and 128 tokens
    python -m benchmarks --tokens 64,256 --repeats 5 --json out/bench.json

See benchmarks/README.md for what each figure measures.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from pathlib import Path

import torch

from benchmarks import report
from benchmarks.timing import log, machine_info

DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"
SECTIONS = ("analysis", "slider", "throughput", "nnsight", "gating")


def token_list(value: str) -> list[int]:
    try:
        counts = sorted({int(part) for part in value.split(",") if part.strip()})
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"--tokens needs integers such as 64,128: {error}"
        ) from error
    if not counts or counts[0] < 2:
        raise argparse.ArgumentTypeError("--tokens needs token counts of 2 or more.")
    return counts


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 64 and 128 tokens, 2 repeats, 1 memory run, 2 gate steps",
    )
    parser.add_argument(
        "--tokens",
        type=token_list,
        default=None,
        help="comma-separated token counts for the full analysis (default 64,128,256,512)",
    )
    parser.add_argument(
        "--detail-tokens",
        type=int,
        default=None,
        help="token count of the slider, throughput and nnsight figures "
        "(default 256, or 128 with --quick)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed runs per figure after the warm-up (default 3, 2 with --quick)",
    )
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed runs before timing (default 1)"
    )
    parser.add_argument(
        "--memory-repeats",
        type=int,
        default=None,
        help="fresh processes per variant and token count for peak memory "
        "(default: the --repeats value, or 1 with --quick. 0 skips memory)",
    )
    parser.add_argument(
        "--gate-steps",
        type=int,
        default=None,
        help="timed gate-training steps per gate kind (default 5, 2 with --quick)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's own choice)",
    )
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run, from {','.join(SECTIONS)}",
    )
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="never create the nnsight environment, and skip nnsight when it is missing",
    )
    parser.add_argument(
        "--setup-nnsight",
        action="store_true",
        help="only set up the nnsight environment, then exit",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        help="where to write the results (default benchmarks/results.json)",
    )
    return parser


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line and fill in the defaults that depend on ``--quick``."""
    parser = build_parser()
    arguments = parser.parse_args(argv)

    quick = arguments.quick
    defaults = {
        "tokens": [64, 128] if quick else [64, 128, 256, 512],
        "detail_tokens": 128 if quick else 256,
        "repeats": 2 if quick else 3,
        "gate_steps": 2 if quick else 5,
    }
    for name, value in defaults.items():
        if getattr(arguments, name) is None:
            setattr(arguments, name, value)
    if arguments.memory_repeats is None:
        arguments.memory_repeats = 1 if quick else arguments.repeats

    arguments.only = [name.strip() for name in arguments.only.split(",") if name.strip()]
    unknown = set(arguments.only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}. Use {', '.join(SECTIONS)}")
    if arguments.repeats < 1 or arguments.gate_steps < 1 or arguments.detail_tokens < 2:
        parser.error("--repeats and --gate-steps must be 1 or more, --detail-tokens 2 or more")
    if arguments.warmup < 0 or arguments.memory_repeats < 0:
        parser.error("--warmup and --memory-repeats must be 0 or more")
    return arguments


def run_sections(arguments: argparse.Namespace, lm, text: str) -> dict[str, object]:
    """Run the selected sections in order and return their results by section name."""
    from benchmarks.analysis_bench import run_analysis
    from benchmarks.gating_bench import run_gating
    from benchmarks.nnsight_bench import run_nnsight
    from benchmarks.slider_bench import run_slider
    from benchmarks.throughput_bench import run_throughput

    repeats, warmup, detail = arguments.repeats, arguments.warmup, arguments.detail_tokens
    results: dict[str, object] = {}
    if "analysis" in arguments.only:
        results["analysis"] = run_analysis(
            lm, text, arguments.tokens, repeats, warmup, arguments.memory_repeats
        )
    if "slider" in arguments.only:
        results["slider"] = run_slider(lm, text, detail, repeats, warmup)
    if "throughput" in arguments.only:
        results["throughput"] = run_throughput(lm, text, detail, repeats, warmup)
    if "nnsight" in arguments.only:
        results["nnsight"] = run_nnsight(detail, repeats, warmup, install=not arguments.no_install)
    if "gating" in arguments.only:
        results["gating"] = run_gating(lm, text, arguments.gate_steps)
    return results


def print_report(results: dict[str, object]) -> None:
    machine = results["machine"]
    print(
        f"rshift benchmarks: {results['model']['name']} on {machine['cpu_model']}, "
        f"{machine['logical_cores']} cores, torch {machine['torch']} with "
        f"{machine['torch_threads']} threads. Times: median [min-max] of "
        f"{results['settings']['repeats']} runs after {results['settings']['warmup']} warm-up; "
        "speed-ups: median [min-max] of interleaved pairs."
    )
    builders = {
        "analysis": report.analysis_section,
        "slider": report.slider_section,
        "throughput": report.throughput_section,
        "nnsight": report.nnsight_section,
        "gating": report.gating_section,
    }
    for name, build in builders.items():
        if name in results:
            print()
            print(build(results[name]))
    print()
    print(report.targets_section(results["targets"]))


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    if arguments.setup_nnsight:
        from benchmarks.nnsight_bench import SetupFailed, prepare

        try:
            print(f"nnsight is ready: {prepare(install=True)}")
        except SetupFailed as error:
            print(f"nnsight setup failed: {error}", file=sys.stderr)
            return 1
        return 0

    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    # Truncating the benchmark text to each token count is intended, not worth a warning.
    logging.getLogger("rshift").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning)

    from benchmarks.text import text_with_tokens
    from rshift.gating import GateSettings
    from rshift.models import load_model

    started = time.perf_counter()
    log("Loading smollm2-135m")
    lm = load_model("smollm2-135m", device="cpu")
    gate_tokens = GateSettings(window=64).min_tokens()
    text = text_with_tokens(
        lm.tokenizer, max([*arguments.tokens, arguments.detail_tokens, gate_tokens])
    )
    results: dict[str, object] = {
        "machine": machine_info(),
        "model": lm.facts(),
        "settings": {
            "tokens": arguments.tokens,
            "detail_tokens": arguments.detail_tokens,
            "repeats": arguments.repeats,
            "warmup": arguments.warmup,
            "memory_repeats": arguments.memory_repeats,
            "gate_steps": arguments.gate_steps,
            "sections": arguments.only,
            "command": " ".join(
                ["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])]
            ),
        },
    }
    results.update(run_sections(arguments, lm, text))
    results["targets"] = report.check_targets(results)
    results["wall_seconds"] = time.perf_counter() - started
    if hasattr(os, "getloadavg"):
        results["machine"]["load_average_end"] = list(os.getloadavg())

    print_report(results)
    report.write_json(results, arguments.json)
    log(f"Wrote {arguments.json} ({results['wall_seconds']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
