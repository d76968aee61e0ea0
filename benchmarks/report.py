"""Turn the measurements into a printed table, a target check and a JSON file."""

from __future__ import annotations

import json
from dataclasses import is_dataclass
from pathlib import Path

from benchmarks.timing import Stats

TARGET_TOKENS = 256
TARGETS = {
    "analysis_speed": 1.5,
    "analysis_memory": 4.0,
    "slider_3n4": 3.0,
    "matmul_fraction": 0.70,
}


def span(stats: Stats | dict, scale: float = 1.0, digits: int = 2) -> str:
    """Format as 'median [min-max]'."""
    if isinstance(stats, dict):
        stats = Stats(stats["median"], stats["min"], stats["max"], tuple(stats["runs"]))
    return (
        f"{stats.median * scale:.{digits}f} "
        f"[{stats.min * scale:.{digits}f}-{stats.max * scale:.{digits}f}]"
    )


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("-+-".join("-" * width for width in widths))
    lines += [" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def analysis_section(records: list[dict]) -> str:
    rows = []
    for record in records:
        if "skipped" in record:
            rows.append([str(record["tokens"]), record["skipped"], "", "", "", "", ""])
            continue
        memory = "rshift_peak_bytes" in record
        rows.append(
            [
                str(record["tokens"]),
                span(record["rshift_seconds"]),
                span(record["naive_seconds"]),
                span(record["time_ratio"]) + "x",
                span(record["rshift_peak_bytes"], 2**-20, 0) if memory else "-",
                span(record["naive_peak_bytes"], 2**-20, 0) if memory else "-",
                f"{record['memory_ratio']:.1f}x" if memory else "-",
            ]
        )
    header = ["tokens", "rshift s", "naive s", "speed-up", "rshift MiB", "naive MiB", "memory"]
    return "Full analysis vs naive Hugging Face lens\n" + table(header, rows)


def slider_section(slider: dict) -> str:
    rows = [
        [
            f"{case['name']} = {case['layer']}",
            span(case["full_seconds"]),
            span(case["run_seconds"]),
            span(case["final_seconds"], digits=3),
            span(case["run_ratio"]) + "x",
            span(case["final_ratio"], digits=1) + "x",
        ]
        for case in slider["cases"]
    ]
    header = [
        "layer L",
        "full recompute s",
        "run() s",
        "final() s",
        "run speed-up",
        "final speed-up",
    ]
    title = f"Slider update at {slider['tokens']} tokens (alpha 0.5) vs full recompute"
    return title + "\n" + table(header, rows)


def throughput_section(result: dict) -> str:
    rows = [
        [
            "reference torch.mm " + "x".join(map(str, result["reference_shape"])),
            span(result["reference_gflops"], digits=1),
            "1.00",
        ],
        ["square matmul 2048", span(result["square_gflops"], digits=1), "-"],
        [
            "lens, matmul part",
            span(result["lens_matmul_gflops"], digits=1),
            span(result["matmul_fraction"]),
        ],
        [
            "lens, whole compute_lens",
            span(result["lens_gflops"], digits=1),
            span(result["whole_lens_fraction"]),
        ],
    ]
    title = (
        f"Lens throughput at {result['tokens']} tokens ({result['lens_rows']} lens rows, "
        f"{result['chunk_rows']} rows per chunk, {result['lens_gflop']:.0f} GFLOP)"
    )
    return title + "\n" + table(["matmul", "GFLOP/s", "fraction of reference"], rows)


def nnsight_section(result: dict) -> str:
    if result.get("status") != "measured":
        return f"nnsight logit lens + attenuation: {result.get('status')} ({result.get('reason')})"
    seconds = result["seconds"]
    rows = [
        [
            span(seconds["nnsight"]),
            span(seconds["rshift_engine"]),
            span(seconds["rshift_analyze"]),
            span(result["ratio_vs_engine"]) + "x",
            span(result["ratio_vs_analyze"]) + "x",
        ]
    ]
    header = ["nnsight s", "rshift engine s", "analyze_text s", "vs engine", "vs analyze_text"]
    attenuation = result["attenuation"]
    title = (
        f"nnsight {result['nnsight_version']} lens with attenuation L={attenuation['layer']}, "
        f"alpha {attenuation['alpha']} at {result['tokens']} tokens"
    )
    return title + "\n" + table(header, rows)


def gating_section(result: dict) -> str:
    rows = [
        [kind, span(record["step_seconds"], digits=3), str(len(record["step_seconds"].runs))]
        for kind, record in result["kinds"].items()
    ]
    title = f"Gate training, {result['window']}-token windows"
    return title + "\n" + table(["gate kind", "step s", "steps timed"], rows)


def check_targets(results: dict) -> list[dict[str, object]]:
    """Compare the measurements with the performance targets, None where one was not run."""
    checks = []
    at_target = next(
        (
            r
            for r in results.get("analysis", [])
            if r["tokens"] == TARGET_TOKENS and "time_ratio" in r
        ),
        None,
    )
    speed = at_target["time_ratio"].median if at_target else None
    memory = at_target.get("memory_ratio") if at_target else None
    checks.append(_check("full analysis speed-up vs naive at 256 tokens", "analysis_speed", speed))
    checks.append(
        _check("peak memory ratio naive / rshift at 256 tokens", "analysis_memory", memory)
    )

    slider = results.get("slider")
    case = next((c for c in slider["cases"] if c["name"] == "3N/4"), None) if slider else None
    value = case["run_ratio"].median if case else None
    label = f"slider run() speed-up at L = 3N/4 ({slider['tokens']} tokens)" if slider else "slider"
    checks.append(_check(label, "slider_3n4", value))

    throughput = results.get("throughput")
    value = throughput["matmul_fraction"].median if throughput else None
    checks.append(_check("lens matmul throughput / measured matmul", "matmul_fraction", value))
    checks.append(
        {
            "target": "GPU: 512-token full analysis under 100 ms",
            "required": "< 0.1 s",
            "measured": None,
            "met": None,
            "note": "not measured: no GPU in this run",
        }
    )
    return checks


def _check(label: str, key: str, value: float | None) -> dict[str, object]:
    required = TARGETS[key]
    met = None if value is None else value >= required
    return {"target": label, "required": f">= {required}", "measured": value, "met": met}


def targets_section(checks: list[dict]) -> str:
    rows = []
    for check in checks:
        value = check["measured"]
        measured = "not measured" if value is None else f"{value:.2f}"
        verdict = {True: "met", False: "MISSED", None: "-"}[check["met"]]
        rows.append([check["target"], str(check["required"]), measured, verdict])
    return "Targets\n" + table(["target", "required", "measured (median)", "result"], rows)


def to_jsonable(value):
    """Convert Stats and nested containers to plain JSON types."""
    if isinstance(value, Stats):
        return value.to_json()
    if is_dataclass(value):
        return to_jsonable(value.__dict__)
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def write_json(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_jsonable(results), indent=2) + "\n", encoding="utf-8")
