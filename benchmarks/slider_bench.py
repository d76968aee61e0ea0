"""A slider update (rerun blocks L..N from the kept stream) against a full recompute."""

from __future__ import annotations

from benchmarks.timing import log, paired_ratio, time_interleaved
from rshift.analysis import LiveAnalysis, analyze_text
from rshift.attenuation import Attenuation

ALPHA = 0.5


def slider_layers(num_layers: int) -> dict[str, int]:
    """Return the attenuated blocks measured: L = N/2 and L = 3N/4, rounded down."""
    return {"N/2": num_layers // 2, "3N/4": 3 * num_layers // 4}


def run_slider(lm, text: str, tokens: int, repeats: int, warmup: int) -> dict[str, object]:
    """Time ``LiveAnalysis.run`` and ``.final`` against ``analyze_text`` at each slider layer.

    The ``LiveAnalysis`` is built once outside the timing, as the app keeps it
    between slider moves.
    """
    live = LiveAnalysis(lm, text, max_tokens=tokens)
    cases = []
    for name, layer in slider_layers(lm.adapter.num_layers).items():
        attenuation = Attenuation(layer, ALPHA)
        log(f"[slider] {tokens} tokens, L = {name} = {layer}")
        variants = {
            "full": lambda a=attenuation: analyze_text(lm, text, max_tokens=tokens, attenuation=a),
            "run": lambda a=attenuation: live.run(a),
            "final": lambda a=attenuation: live.final(a),
        }
        times = time_interleaved(variants, repeats, warmup, label=f"L={layer}")
        cases.append(
            {
                "name": name,
                "layer": layer,
                "alpha": ALPHA,
                "full_seconds": times["full"],
                "run_seconds": times["run"],
                "final_seconds": times["final"],
                "run_ratio": paired_ratio(times["full"], times["run"]),
                "final_ratio": paired_ratio(times["full"], times["final"]),
            }
        )
    return {"tokens": tokens, "num_layers": lm.adapter.num_layers, "cases": cases}
