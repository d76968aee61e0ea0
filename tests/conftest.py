"""Shared fixtures: seeded tiny random models of each architecture family.

Every model here is built from a config, saved as a Hugging Face folder and
loaded back through ``rshift.models.load_model``, so tests exercise the real
loading path and never touch the network. The sizes are deliberately odd so
shape mix-ups fail loudly.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Selenium would otherwise send usage statistics and look up driver downloads.
os.environ.setdefault("SE_AVOID_STATS", "true")

TINY_VOCAB = 331
CORPUS = [
    "The cat sat on the mat. The dog sat on the log.",
    "Residual streams carry the current token forward; the head predicts the next one.",
    "Numbers 0123456789 and symbols ,.;:!? appear too, with café and naïve spellings.",
    "A quick brown fox jumps over the lazy dog while researchers watch the logit lens.",
]
SAMPLE_TEXT = "The cat sat on the log, and the quick dog watched the lens."


def build_tokenizer():
    """Train a byte-level BPE tokenizer on a tiny corpus, entirely offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB - 2,
        special_tokens=["<|endoftext|>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS * 20, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|endoftext|>", pad_token="<pad>"
    )


def tiny_config(family: str, tied: bool = True):
    """Return a small config of ``family`` ('llama', 'gemma3' or 'gpt2')."""
    from transformers import Gemma3TextConfig, GPT2Config, LlamaConfig

    vocab = TINY_VOCAB + 5
    if family == "llama":
        return LlamaConfig(
            vocab_size=vocab,
            hidden_size=24,
            intermediate_size=40,
            num_hidden_layers=5,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
            tie_word_embeddings=tied,
        )
    if family == "gemma3":
        return Gemma3TextConfig(
            vocab_size=vocab,
            hidden_size=32,
            intermediate_size=48,
            num_hidden_layers=6,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=16,
            max_position_embeddings=128,
            sliding_window=4,
            layer_types=["sliding_attention"] * 2 + ["full_attention"] + ["sliding_attention"] * 3,
            final_logit_softcapping=5.0,
            tie_word_embeddings=True,
        )
    if family == "gpt2":
        return GPT2Config(
            vocab_size=vocab,
            n_embd=24,
            n_layer=4,
            n_head=3,
            n_positions=128,
            bos_token_id=0,
            eos_token_id=0,
            tie_word_embeddings=tied,
        )
    raise ValueError(family)


def save_tiny_model(folder: Path, family: str, tied: bool = True, seed: int = 0) -> Path:
    """Build a seeded random model of ``family`` and save it with a tokenizer in ``folder``."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(family, tied))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            # Default norm weights are all ones (or zeros for Gemma); random
            # ones make a lens that skipped or doubled the final norm visibly wrong.
            if "norm" in name or "ln_" in name:
                parameter.add_(0.3 * torch.randn_like(parameter))
            elif parameter.dim() == 2:
                parameter.normal_(0.0, 0.4)
    model.save_pretrained(folder)
    build_tokenizer().save_pretrained(folder)
    return folder


FAMILIES = {
    "llama_tied": ("llama", True),
    "llama_untied": ("llama", False),
    "gemma3": ("gemma3", True),
    "gpt2": ("gpt2", True),
}


@pytest.fixture(scope="session")
def tiny_folders(tmp_path_factory) -> dict[str, Path]:
    """Folders of saved tiny models, one per family key of ``FAMILIES``."""
    root = tmp_path_factory.mktemp("tiny-models")
    return {
        key: save_tiny_model(root / key, family, tied) for key, (family, tied) in FAMILIES.items()
    }


@pytest.fixture(scope="session")
def tiny_models(tiny_folders):
    """Loaded tiny models, one per family key."""
    from rshift.models import load_model

    return {key: load_model(str(folder), device="cpu") for key, folder in tiny_folders.items()}


@pytest.fixture(params=sorted(FAMILIES))
def tiny_model(request, tiny_models):
    """Each tiny model in turn."""
    return tiny_models[request.param]


@pytest.fixture(autouse=True)
def isolated_cache(request, tmp_path, monkeypatch):
    """Point the model cache at a per-test folder, except for tests on the bundled models.

    Bundled-model tests keep the user's cache so the conversion happens once.
    """
    if request.node.get_closest_marker("real_model") or request.node.get_closest_marker("gemma"):
        return
    monkeypatch.setenv("RSHIFT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def smollm2():
    """The bundled SmolLM2-135M, converted into the user's cache on first use."""
    from rshift.models import load_model

    return load_model("smollm2-135m", device="cpu")


@pytest.fixture(scope="session")
def gemma3():
    """The bundled Gemma-3-270M, converted into the user's cache on first use."""
    from rshift.models import load_model

    return load_model("gemma3-270m", device="cpu")
