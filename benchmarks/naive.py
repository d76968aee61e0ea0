"""The baseline: a logit lens written the direct way with Hugging Face outputs.

This is how a logit lens usually looks in a notebook. It asks the model for
all hidden states and stacks them. Then it pushes every state through the
final norm and the head at once, takes a log-softmax over the whole
``(layers, positions, vocab)`` tensor, and reads the metrics off it. It is
written for the Llama layout of the bundled SmolLM2 (``model.model.norm``,
``model.lm_head``).

NOTE: Hugging Face's last hidden state is already normalised, so this lens
normalises it a second time. rshift reads h_N before the final norm instead.
The cost is the same, and :func:`agreement` compares layers 0..N-1 only.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

CONTRACT_METRICS = (
    "logprob_current",
    "logprob_next",
    "rank_current",
    "rank_next",
    "cosine_current",
    "cosine_next",
)


@torch.no_grad()
def naive_lens(model, tokenizer, text: str, max_tokens: int) -> dict[str, np.ndarray]:
    """Compute the six contract metrics of ``text`` the memory-hungry way.

    Returns:
        metric name -> ``(layers, positions)`` float64 array, NaN where undefined.
    """
    ids = tokenizer(text, return_tensors="pt")["input_ids"][:, :max_tokens]
    output = model(input_ids=ids, output_hidden_states=True)
    states = torch.stack(output.hidden_states)[:, 0]  # (layers, positions, hidden)
    layers, positions, _ = states.shape

    logits = model.lm_head(model.model.norm(states))  # (layers, positions, vocab)
    logprobs = torch.log_softmax(logits.float(), dim=-1)

    current = ids[0]
    following = torch.cat([current[1:], current[-1:]])
    current_logit = logits.gather(-1, current.expand(layers, positions)[..., None])
    next_logit = logits.gather(-1, following.expand(layers, positions)[..., None])

    embedding = model.model.embed_tokens.weight
    metrics = {
        "logprob_current": logprobs.gather(-1, current.expand(layers, positions)[..., None])[
            ..., 0
        ],
        "logprob_next": logprobs.gather(-1, following.expand(layers, positions)[..., None])[..., 0],
        "rank_current": (logits > current_logit).sum(dim=-1),
        "rank_next": (logits > next_logit).sum(dim=-1),
        "cosine_current": F.cosine_similarity(states, embedding[current][None], dim=-1),
        "cosine_next": F.cosine_similarity(states, embedding[following][None], dim=-1),
    }
    result = {name: values.double().numpy() for name, values in metrics.items()}
    for name, values in result.items():
        if name.endswith("_next"):
            values[:, -1] = np.nan
    return result


def agreement(naive: dict[str, np.ndarray], engine: dict[str, np.ndarray]) -> dict[str, float]:
    """Return the largest absolute difference per metric over layers 0..N-1 and defined entries.

    Layer N is left out because the naive lens normalises Hugging Face's
    already normalised last state a second time.
    """
    differences = {}
    for name in CONTRACT_METRICS:
        a, b = naive[name][:-1], engine[name][:-1]
        defined = ~np.isnan(a) & ~np.isnan(b)
        differences[name] = float(np.max(np.abs(a[defined] - b[defined])))
    return differences
