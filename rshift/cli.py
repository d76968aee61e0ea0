"""Command line: ``python -m rshift {models,prepare,analyze,batch,sweep,train-gates}``.

Exit codes: 0 success, 2 invalid input or arguments, 1 a model that could
not be loaded or another failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

logger = logging.getLogger("rshift.cli")

EXIT_INPUT = 2
EXIT_FAILURE = 1


class InputError(ValueError):
    """Invalid user input; reported on stderr with exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rshift",
        description="Locate where the residual stream turns from the current to the next token.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("models", help="list the bundled models, their sizes and cache state")
    prepare = commands.add_parser("prepare", help="convert a bundled model into the cache")
    prepare.add_argument("model", nargs="?", default="smollm2-135m", help="catalogue name")

    analyze = commands.add_parser("analyze", help="alignment metrics of one text as JSON")
    _add_model_options(analyze)
    analyze.add_argument("--text-file", required=True, type=Path, help="UTF-8 text to analyse")
    analyze.add_argument("--json", required=True, type=Path, help="output JSON file")
    _add_attenuation_options(analyze)

    batch = commands.add_parser("batch", help="analyse many prompts and aggregate the shift")
    _add_model_options(batch)
    batch.add_argument(
        "--prompts", required=True, type=Path, help="prompt file: .txt, .csv, .jsonl or .json"
    )
    batch.add_argument(
        "--out",
        type=Path,
        default=Path("rshift-batch"),
        help="output folder for summary.json/.csv and aggregate.csv",
    )
    batch.add_argument(
        "--max-prompts", type=int, default=200, help="maximum number of prompts to analyse"
    )
    _add_attenuation_options(batch)

    sweep = commands.add_parser("sweep", help="perplexity over attenuation layer x strength")
    _add_model_options(sweep)
    sweep.add_argument("--text-file", required=True, type=Path, help="UTF-8 text to analyse")
    sweep.add_argument(
        "--layers",
        default="all",
        help="blocks to sweep: 'all', a range '10-30' or a list '5,10,20'",
    )
    sweep.add_argument(
        "--alphas", default="0,0.25,0.5,0.75,1", help="comma-separated strengths in [0, 2]"
    )
    sweep.add_argument(
        "--scope",
        choices=("single", "from"),
        default="single",
        help="attenuate block L only, or every block from L on",
    )
    sweep.add_argument(
        "--mode",
        choices=("block", "attention", "mlp"),
        default="block",
        help="which skip path to scale",
    )
    sweep.add_argument("--csv", type=Path, help="output CSV file")
    sweep.add_argument("--json", type=Path, help="output JSON file")

    gates = commands.add_parser("train-gates", help="train learnable residual gates on a text")
    _add_model_options(gates)
    gates.add_argument("--text-file", required=True, type=Path, help="UTF-8 training text")
    gates.add_argument(
        "--kind",
        choices=("scalar", "token"),
        default="scalar",
        help="one gate per block, or a gate per position computed from the stream",
    )
    gates.add_argument("--steps", type=int, default=50, help="optimiser steps")
    gates.add_argument("--learning-rate", type=float, default=0.05, help="Adam learning rate")
    gates.add_argument("--window", type=int, default=64, help="tokens per training window")
    gates.add_argument("--out", type=Path, help="write the gates to this .safetensors file")
    return parser


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default="smollm2-135m", help="catalogue name, model folder, .gguf file or hub id"
    )
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="keep at most this many tokens per text (default: model context)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--dtype", default="float32", help="float32, bfloat16 or float16")


def _add_attenuation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--attenuate-layer", type=int, help="block L (1..N) to attenuate")
    parser.add_argument("--alpha", type=float, help="strength in [0, 2]; 1 changes nothing")
    parser.add_argument(
        "--scope",
        choices=("single", "from"),
        default="single",
        help="attenuate block L only, or every block from L on",
    )
    parser.add_argument(
        "--mode",
        choices=("block", "attention", "mlp"),
        default="block",
        help="which skip path to scale",
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from rshift.gating import NotEnoughTextError
    from rshift.models import ModelLoadError
    from rshift.prompts import PromptFileError
    from rshift.tokens import EmptyTextError

    handler = COMMANDS[args.command]
    try:
        return handler(args) or 0
    except (InputError, EmptyTextError, PromptFileError, NotEnoughTextError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INPUT
    except ModelLoadError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILURE


def run_models(args) -> int:
    from rshift.models import cache_root, catalogue_status

    print(f"cache: {cache_root()}")
    for row in catalogue_status():
        state = "missing"
        if row["installed"]:
            state = "installed"
        if row["cached"]:
            state = "cached"
        print(
            f"{row['name']:<14} {row['blocks']:>3} blocks  hidden {row['hidden_size']:<5} "
            f"GGUF {row['gguf_mb']:>4} MB  {state:<9}  {row['description']}"
        )
    return 0


def run_prepare(args) -> int:
    from rshift.models import (
        CATALOGUE,
        ModelLoadError,
        cache_entry_is_valid,
        cache_root,
        prepare_catalogue_model,
    )

    if args.model in CATALOGUE:
        cached = cache_root() / CATALOGUE[args.model].cache_key()
        if cache_entry_is_valid(cached):
            print(cached)
            return 0
    if args.model not in CATALOGUE:
        raise InputError(
            f"Unknown catalogue model {args.model!r}; use one of {', '.join(CATALOGUE)}."
        )
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        tqdm = None
    bar = tqdm(total=100, desc=f"Preparing {args.model}", unit="%") if tqdm else None

    def report(fraction: float, message: str) -> None:
        if bar:
            bar.set_postfix_str(message)
            bar.update(round(fraction * 100) - bar.n)

    try:
        entry = prepare_catalogue_model(args.model, report)
    except ModelLoadError:
        raise
    finally:
        if bar:
            bar.close()
    print(entry)
    return 0


def _load(args):
    from rshift.models import load_model

    return load_model(args.model, device=args.device, dtype=args.dtype)


def _attenuation(args):
    from rshift.attenuation import Attenuation

    if args.attenuate_layer is None and args.alpha is None:
        return None
    if args.attenuate_layer is None or args.alpha is None:
        raise InputError("--attenuate-layer and --alpha must be given together.")
    return Attenuation(args.attenuate_layer, args.alpha, args.scope, args.mode)


def _read_text(path: Path) -> str:
    """Read a text file as UTF-8, or UTF-16/32 with a byte-order mark, like uploads."""
    from rshift.prompts import decode_upload

    try:
        data = path.read_bytes()
    except FileNotFoundError as error:
        raise InputError(f"Text file {path} not found.") from error
    text, _encoding = decode_upload(data, path.name)
    return text


def _check_max_tokens(args) -> None:
    if args.max_tokens is not None and args.max_tokens < 1:
        raise InputError(f"--max-tokens must be at least 1, got {args.max_tokens}.")


def run_analyze(args) -> int:
    from rshift.analysis import analyze_text

    _check_max_tokens(args)
    text = _read_text(args.text_file)
    if not text.strip():
        raise InputError(f"{args.text_file} is empty or only whitespace; give it some text.")
    attenuation = _attenuation(args)
    lm = _load(args)
    if attenuation:
        attenuation.validate(lm.adapter.num_layers)
    result = analyze_text(lm, text, max_tokens=args.max_tokens, attenuation=attenuation)
    for warning in result.warnings:
        logger.warning(warning)
    _write_json(args.json, result.to_json())
    logger.info(
        "Wrote %s (%d tokens, perplexity %s)",
        args.json,
        len(result.text),
        result.perplexity if result.perplexity is not None else result.perplexity_note,
    )
    return 0


def run_batch(args) -> int:
    from tqdm import tqdm

    from rshift.batch import analyze_prompts
    from rshift.prompts import parse_prompt_file

    _check_max_tokens(args)
    if not args.prompts.is_file():
        raise InputError(f"Prompt file {args.prompts} not found.")
    parsed = parse_prompt_file(
        args.prompts.read_bytes(), args.prompts.name, max_prompts=args.max_prompts
    )
    for warning in parsed.warnings:
        logger.warning(warning)
    attenuation = _attenuation(args)
    lm = _load(args)
    if attenuation:
        attenuation.validate(lm.adapter.num_layers)

    with tqdm(total=len(parsed.prompts), desc="Analysing prompts", unit="prompt") as bar:
        result = analyze_prompts(
            lm,
            parsed.prompts,
            max_tokens=args.max_tokens,
            attenuation=attenuation,
            progress=lambda fraction, message: bar.update(1),
        )
    args.out.mkdir(parents=True, exist_ok=True)
    _write_json(args.out / "summary.json", result.to_json())
    (args.out / "summary.csv").write_text(result.summary_csv())
    (args.out / "aggregate.csv").write_text(result.aggregate_csv())
    logger.info(
        "Wrote %s (%d prompts analysed, %d skipped)",
        args.out,
        len(result.rows),
        len(result.skipped),
    )
    return 0


def parse_layers(spec: str, num_layers: int) -> list[int]:
    """Parse 'all', 'A-B' or 'a,b,c' into block numbers within 1..num_layers."""
    try:
        if spec == "all":
            layers = list(range(1, num_layers + 1))
        elif "-" in spec:
            first, last = (int(part) for part in spec.split("-", 1))
            layers = list(range(first, last + 1))
        else:
            layers = [int(part) for part in spec.split(",") if part.strip()]
    except ValueError as error:
        raise InputError(f"Invalid --layers {spec!r}; use 'all', '10-30' or '5,10,20'.") from error
    if not layers:
        raise InputError(f"Invalid --layers {spec!r}: the range is empty or runs backwards.")
    bad = [layer for layer in layers if not 1 <= layer <= num_layers]
    if not layers or bad:
        raise InputError(f"--layers must name blocks in 1..{num_layers}; got {spec!r}.")
    return layers


def parse_alphas(spec: str) -> list[float]:
    try:
        alphas = [float(part) for part in spec.split(",") if part.strip()]
    except ValueError as error:
        raise InputError(f"Invalid --alphas {spec!r}; use numbers like 0,0.5,1.") from error
    if not alphas or any(not 0 <= alpha <= 2 for alpha in alphas):
        raise InputError(f"--alphas must be numbers in [0, 2]; got {spec!r}.")
    return alphas


def run_sweep(args) -> int:
    from tqdm import tqdm

    from rshift.analysis import LiveAnalysis
    from rshift.intervention import sweep

    _check_max_tokens(args)
    if not args.csv and not args.json:
        raise InputError("Give --csv and/or --json for the landscape output.")
    text = _read_text(args.text_file)
    alphas = parse_alphas(args.alphas)
    lm = _load(args)
    layers = parse_layers(args.layers, lm.adapter.num_layers)
    live = LiveAnalysis(lm, text, max_tokens=args.max_tokens)

    total = len(layers) * len(alphas)
    with tqdm(total=total, desc="Sweeping layer x alpha", unit="point") as bar:
        landscape = sweep(
            live,
            layers,
            alphas,
            scope=args.scope,
            mode=args.mode,
            progress=lambda fraction, message: bar.update(1),
        )
    rows = landscape.to_rows()
    if args.csv:
        from rshift.batch import _csv

        args.csv.write_text(_csv(("layer", "alpha", "perplexity", "diverged"), rows))
    if args.json:
        _write_json(
            args.json,
            {
                "model": lm.name,
                "scope": args.scope,
                "mode": args.mode,
                "baseline_perplexity": landscape.baseline,
                "points": rows,
            },
        )
    return 0


def run_train_gates(args) -> int:
    import torch
    from tqdm import tqdm

    from rshift.gating import GateSettings, save_gates, split_windows, train_gates

    text = _read_text(args.text_file)
    settings = GateSettings(
        kind=args.kind, steps=args.steps, learning_rate=args.learning_rate, window=args.window
    )
    lm = _load(args)
    # Reject too little text before a progress bar appears.
    split_windows(torch.tensor(lm.tokenizer(text)["input_ids"]), settings)
    with tqdm(total=settings.steps, desc="Training gates", unit="step") as bar:

        def on_step(step: int, loss: float) -> None:
            bar.set_postfix(loss=f"{loss:.3f}")
            bar.update(1)

        result = train_gates(lm, text, settings, on_step=on_step)
    print(f"validation perplexity before: {result.validation_before:.3f}")
    print(f"validation perplexity after:  {result.validation_after:.3f}")
    gates = ", ".join(f"{block}:{value:.3f}" for block, value in result.gate_per_block.items())
    print(f"gate per block: {gates}")
    for note in result.notes:
        print(f"warning: {note}")
    if args.out:
        save_gates(args.out, result)
        print(f"saved {args.out}")
    return 0


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, allow_nan=False))


COMMANDS = {
    "models": run_models,
    "prepare": run_prepare,
    "analyze": run_analyze,
    "batch": run_batch,
    "sweep": run_sweep,
    "train-gates": run_train_gates,
}
