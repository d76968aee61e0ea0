"""The logit lens with one attenuation written with nnsight, timed against rshift.

This module runs inside the separate environment that ``nnsight_bench`` sets
up (nnsight is not an rshift dependency). It prints progress to stderr and
one JSON object to stdout.

The nnsight version follows the style of nnsight's README. Inside one
``trace`` it reads each block's output in order and replaces the output of
block L with the attenuated one. It decodes every state through the model's
own final norm and head and keeps only the six contract metrics per layer.
"""

from __future__ import annotations

import argparse
import json
import logging
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.naive import CONTRACT_METRICS
from benchmarks.text import text_with_tokens
from benchmarks.timing import log, paired_ratio, time_interleaved
from rshift.analysis import analyze_text
from rshift.attenuation import Attenuation
from rshift.lens import compute_lens
from rshift.models import load_model
from rshift.stream import capture_stream
from rshift.tokens import tokenize


def nnsight_lens(traced, lm, ids: torch.Tensor, layer: int, alpha: float) -> dict[str, np.ndarray]:
    """Attenuate block ``layer`` by ``alpha`` and compute the contract metrics with nnsight.

    Returns:
        metric name -> ``(layers, positions)`` float64 array, NaN where undefined.
    """
    import nnsight

    current = ids
    following = torch.cat([ids[1:], ids[-1:]])
    embedding = lm.model.model.embed_tokens.weight
    blocks = traced.model.layers

    with torch.no_grad(), traced.trace(ids[None]):
        rows = nnsight.save([])

        def decode(hidden):
            logits = traced.lm_head(traced.model.norm(hidden))[0]
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            current_logprob = logprobs.gather(1, current[:, None])
            next_logprob = logprobs.gather(1, following[:, None])
            state = hidden[0]
            rows.append(
                torch.stack(
                    [
                        current_logprob[:, 0],
                        next_logprob[:, 0],
                        (logprobs > current_logprob).sum(dim=-1),
                        (logprobs > next_logprob).sum(dim=-1),
                        F.cosine_similarity(state, embedding[current], dim=-1),
                        F.cosine_similarity(state, embedding[following], dim=-1),
                    ]
                )
            )

        for index in range(lm.adapter.num_layers):
            block = blocks[index]
            stream = block.input if index == 0 or index == layer - 1 else None
            if index == 0:
                decode(stream)
            if index == layer - 1:
                block.output = block.output - (1 - alpha) * stream
            decode(block.output)

    grid = torch.stack(list(rows)).double().numpy()  # (layers, metrics, positions)
    result = {name: grid[:, i, :].copy() for i, name in enumerate(CONTRACT_METRICS)}
    for name, values in result.items():
        if name.endswith("_next"):
            values[:, -1] = np.nan
    return result


def run(tokens: int, repeats: int, warmup: int) -> dict[str, object]:
    """Time nnsight, the rshift engine and ``analyze_text`` interleaved at ``tokens`` tokens."""
    import nnsight

    lm = load_model("smollm2-135m", device="cpu")
    traced = nnsight.NNsight(lm.model)
    text = text_with_tokens(lm.tokenizer, tokens)
    ids = tokenize(lm.tokenizer, text, tokens).ids
    layer = 3 * lm.adapter.num_layers // 4
    attenuation = Attenuation(layer, 0.5)

    def engine():
        stream = capture_stream(lm, ids, attenuation)
        return compute_lens(lm.adapter, stream.resid, ids)

    variants = {
        "nnsight": lambda: nnsight_lens(traced, lm, ids, layer, 0.5),
        "rshift_engine": engine,
        "rshift_analyze": lambda: analyze_text(
            lm, text, max_tokens=tokens, attenuation=attenuation
        ),
    }
    times = time_interleaved(variants, repeats, warmup, label=f"nnsight {tokens} tokens")

    ours, theirs = engine().metrics, variants["nnsight"]()
    differences = {}
    for name in CONTRACT_METRICS:
        defined = ~np.isnan(theirs[name])
        differences[name] = float(np.max(np.abs(theirs[name][defined] - ours[name][defined])))
    return {
        "status": "measured",
        "nnsight_version": nnsight.__version__,
        "torch": torch.__version__,
        "tokens": tokens,
        "attenuation": attenuation.to_dict(),
        "seconds": {name: stats.to_json() for name, stats in times.items()},
        "ratio_vs_engine": paired_ratio(times["nnsight"], times["rshift_engine"]).to_json(),
        "ratio_vs_analyze": paired_ratio(times["nnsight"], times["rshift_analyze"]).to_json(),
        "nnsight_vs_rshift_max_abs_diff": differences,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Time an nnsight logit lens against rshift.")
    parser.add_argument("--tokens", type=int, required=True)
    parser.add_argument("--repeats", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, required=True)
    arguments = parser.parse_args()

    torch.set_num_threads(arguments.threads)
    logging.getLogger("rshift").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    log(f"[nnsight] {arguments.tokens} tokens")
    print(json.dumps(run(arguments.tokens, arguments.repeats, arguments.warmup)))


if __name__ == "__main__":
    main()
