"""Model loading: bad inputs, unsupported architectures, and the safetensors cache."""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path

import pytest
import safetensors.torch
import torch

import rshift.models as models
from rshift.adapters import UnsupportedArchitectureError, adapter_for, embeddings_are_tied
from rshift.models import (
    MARKER_NAME,
    ModelLoadError,
    cache_entry_is_valid,
    cache_root,
    catalogue_status,
    load_model,
    prepare_catalogue_model,
    prepare_gguf,
    write_cache_entry,
)
from tests.conftest import build_tokenizer, tiny_config

PROBE_IDS = torch.tensor([[5, 17, 42, 99, 3, 250, 7, 64]])


def logits_of(model: torch.nn.Module) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=PROBE_IDS, use_cache=False).logits


def leftovers(folder: Path) -> list[str]:
    """Return the sorted names in ``folder``, where staging folders start with a dot."""
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


@pytest.fixture(scope="module")
def foreign_folders(tmp_path_factory) -> dict[str, Path]:
    """Build tiny model folders that rshift must reject: an encoder and two other decoders."""
    from transformers import (
        BertConfig,
        BertModel,
        GPTNeoXConfig,
        GPTNeoXForCausalLM,
        OPTConfig,
        OPTForCausalLM,
    )

    root = tmp_path_factory.mktemp("foreign-models")
    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    models_by_name = {
        "bert": BertModel(
            BertConfig(
                vocab_size=336,
                hidden_size=16,
                num_hidden_layers=1,
                num_attention_heads=2,
                intermediate_size=20,
            )
        ),
        "opt": OPTForCausalLM(
            OPTConfig(
                vocab_size=336,
                hidden_size=16,
                num_hidden_layers=1,
                num_attention_heads=2,
                ffn_dim=20,
                word_embed_proj_dim=16,
            )
        ),
        "gpt_neox": GPTNeoXForCausalLM(
            GPTNeoXConfig(
                vocab_size=336,
                hidden_size=16,
                num_hidden_layers=1,
                num_attention_heads=2,
                intermediate_size=20,
            )
        ),
    }
    folders = {}
    for name, model in models_by_name.items():
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
        folders[name] = root / name
    return folders


# --- bad inputs -------------------------------------------------------------------------------


def test_unknown_name_raises():
    with pytest.raises(ModelLoadError, match="Unknown model 'no-such-model'"):
        load_model("no-such-model", device="cpu")


def test_unknown_name_lists_catalogue():
    with pytest.raises(ModelLoadError, match="smollm2-135m"):
        load_model("no-such-model", device="cpu")


def test_missing_folder_raises(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(str(tmp_path / "absent"), device="cpu")


def test_folder_without_config_raises(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        load_model(str(tmp_path / "empty"), device="cpu")


def test_folder_without_weights_raises(tmp_path, tiny_folders):
    folder = tmp_path / "config-only"
    folder.mkdir()
    shutil.copy(tiny_folders["llama_tied"] / "config.json", folder)
    with pytest.raises(ModelLoadError, match="has no weights"):
        load_model(str(folder), device="cpu")


@pytest.fixture()
def pickle_folder(tmp_path, tiny_folders, tiny_models) -> Path:
    """A tiny Llama folder whose weights exist only as a pickle file."""
    folder = tmp_path / "pickle-only"
    shutil.copytree(tiny_folders["llama_untied"], folder)
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    torch.save(tiny_models["llama_untied"].model.state_dict(), folder / "pytorch_model.bin")
    return folder


def test_pickle_weights_rejected(pickle_folder):
    with pytest.raises(ModelLoadError, match="pickle"):
        load_model(str(pickle_folder), device="cpu")


def test_pickle_error_suggests_safetensors(pickle_folder):
    with pytest.raises(ModelLoadError, match="Convert them to safetensors"):
        load_model(str(pickle_folder), device="cpu")


def test_pickle_allowed_when_opted_in(pickle_folder, tiny_models):
    loaded = load_model(str(pickle_folder), device="cpu", allow_pickle=True)
    assert torch.equal(logits_of(loaded.model), logits_of(tiny_models["llama_untied"].model))


def test_not_gguf_file_raises(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"this is not a model file")
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        load_model(str(fake), device="cpu")


def test_not_gguf_file_leaves_cache(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"this is not a model file")
    with pytest.raises(ModelLoadError):
        load_model(str(fake), device="cpu")
    assert leftovers(cache_root()) == []


def test_encoder_folder_raises(foreign_folders):
    with pytest.raises(ModelLoadError, match="not a causal language model"):
        load_model(str(foreign_folders["bert"]), device="cpu")


def test_encoder_error_names_type(foreign_folders):
    with pytest.raises(ModelLoadError, match="'bert'"):
        load_model(str(foreign_folders["bert"]), device="cpu")


@pytest.fixture()
def no_network(monkeypatch):
    """Fail the test on any attempt to open a network connection."""

    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_offline_hub_id_raises(no_network):
    with pytest.raises(ModelLoadError, match="cannot be reached"):
        load_model("example-org/example-model", device="cpu")


def test_offline_hub_id_fails_fast(no_network):
    start = time.perf_counter()
    with pytest.raises(ModelLoadError):
        load_model("example-org/example-model", device="cpu")
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize(
    ("name", "class_name"), [("opt", "OPTForCausalLM"), ("gpt_neox", "GPTNeoXForCausalLM")]
)
def test_unsupported_decoder_raises(foreign_folders, name, class_name):
    with pytest.raises(UnsupportedArchitectureError, match=class_name):
        load_model(str(foreign_folders[name]), device="cpu")


def test_unsupported_lists_supported(foreign_folders):
    with pytest.raises(UnsupportedArchitectureError, match="llama"):
        load_model(str(foreign_folders["opt"]), device="cpu")


def test_bad_dtype_raises(tiny_folders):
    with pytest.raises(ModelLoadError, match="Unknown dtype"):
        load_model(str(tiny_folders["gpt2"]), device="cpu", dtype="int3")


# --- cache entries ------------------------------------------------------------------------------


def test_cache_round_trip_logits(tiny_model, tmp_path):
    entry = write_cache_entry(tiny_model.model, tiny_model.tokenizer, tmp_path / "e", "test")
    loaded = load_model(str(entry), device="cpu")
    assert torch.equal(logits_of(loaded.model), logits_of(tiny_model.model))


def test_cache_round_trip_valid(tiny_model, tmp_path):
    entry = write_cache_entry(tiny_model.model, tiny_model.tokenizer, tmp_path / "e", "test")
    assert cache_entry_is_valid(entry)


def test_cache_round_trip_facts(tiny_model, tmp_path):
    entry = write_cache_entry(tiny_model.model, tiny_model.tokenizer, tmp_path / "e", "test")
    loaded = load_model(str(entry), device="cpu")
    assert loaded.adapter.facts() == tiny_model.adapter.facts()


def test_cache_marker_records_source(tiny_models, tmp_path):
    lm = tiny_models["gpt2"]
    entry = write_cache_entry(lm.model, lm.tokenizer, tmp_path / "e", "somewhere.gguf")
    assert json.loads((entry / MARKER_NAME).read_text())["source"] == "somewhere.gguf"


def fail_save_model(*args, **kwargs):
    raise KeyboardInterrupt


def test_interrupted_weights_leave_nothing(tiny_models, tmp_path, monkeypatch):
    lm = tiny_models["llama_tied"]
    monkeypatch.setattr(safetensors.torch, "save_model", fail_save_model)
    with pytest.raises(KeyboardInterrupt):
        write_cache_entry(lm.model, lm.tokenizer, tmp_path / "cache" / "e", "test")
    assert leftovers(tmp_path / "cache") == []


class FailingTokenizer:
    """A tokenizer that writes part of its files, then fails as a full disk would."""

    def save_pretrained(self, folder):
        (Path(folder) / "tokenizer.json").write_text("{")
        raise OSError("No space left on device")


def test_failed_tokenizer_leaves_nothing(tiny_models, tmp_path):
    lm = tiny_models["llama_tied"]
    with pytest.raises(OSError, match="No space"):
        write_cache_entry(lm.model, FailingTokenizer(), tmp_path / "cache" / "e", "test")
    assert leftovers(tmp_path / "cache") == []


def test_failed_rewrite_keeps_old_entry(tiny_models, tmp_path, monkeypatch):
    lm = tiny_models["llama_tied"]
    entry = write_cache_entry(lm.model, lm.tokenizer, tmp_path / "cache" / "e", "test")
    monkeypatch.setattr(safetensors.torch, "save_model", fail_save_model)
    with pytest.raises(KeyboardInterrupt):
        write_cache_entry(lm.model, lm.tokenizer, entry, "test")
    assert cache_entry_is_valid(entry)
    assert leftovers(tmp_path / "cache") == ["e"]


@pytest.fixture()
def valid_entry(tiny_models, tmp_path) -> Path:
    lm = tiny_models["gpt2"]
    return write_cache_entry(lm.model, lm.tokenizer, tmp_path / "entry", "test")


def test_truncated_weights_invalid(valid_entry):
    weights = valid_entry / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert not cache_entry_is_valid(valid_entry)


def test_missing_marker_invalid(valid_entry):
    (valid_entry / MARKER_NAME).unlink()
    assert not cache_entry_is_valid(valid_entry)


def test_missing_tokenizer_invalid(valid_entry):
    (valid_entry / "tokenizer.json").unlink()
    assert not cache_entry_is_valid(valid_entry)


def test_unknown_format_invalid(valid_entry):
    marker = valid_entry / MARKER_NAME
    record = json.loads(marker.read_text())
    record["format"] = 999
    marker.write_text(json.dumps(record))
    assert not cache_entry_is_valid(valid_entry)


def test_damaged_header_invalid(valid_entry):
    """Same size as recorded, but the safetensors header is garbage."""
    weights = valid_entry / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[:16] = b"\xff" * 16
    weights.write_bytes(bytes(data))
    assert not cache_entry_is_valid(valid_entry)


def test_missing_entry_invalid(tmp_path):
    assert not cache_entry_is_valid(tmp_path / "never-written")


# --- conversion on demand ------------------------------------------------------------------------


@pytest.fixture()
def conversions(tiny_models, monkeypatch) -> list[Path]:
    """Replace the GGUF conversion with a tiny model write and record each call's entry."""
    calls: list[Path] = []
    lm = tiny_models["llama_tied"]

    def convert(gguf_path, entry, progress=None):
        calls.append(entry)
        return write_cache_entry(lm.model, lm.tokenizer, entry, source=str(gguf_path))

    monkeypatch.setattr(models, "convert_gguf", convert)
    return calls


KEY = "gguf-fake-000000000000"


def test_prepare_converts_once(conversions, tmp_path):
    prepare_gguf(tmp_path / "fake.gguf", KEY)
    prepare_gguf(tmp_path / "fake.gguf", KEY)
    assert len(conversions) == 1


def test_prepare_returns_valid_entry(conversions, tmp_path):
    entry = prepare_gguf(tmp_path / "fake.gguf", KEY)
    assert entry == cache_root() / KEY
    assert cache_entry_is_valid(entry)


def test_prepare_rebuilds_truncated(conversions, tmp_path):
    entry = prepare_gguf(tmp_path / "fake.gguf", KEY)
    weights = entry / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    prepare_gguf(tmp_path / "fake.gguf", KEY)
    assert len(conversions) == 2
    assert cache_entry_is_valid(entry)


def test_prepare_rebuilds_without_marker(conversions, tmp_path):
    entry = prepare_gguf(tmp_path / "fake.gguf", KEY)
    (entry / MARKER_NAME).unlink()
    prepare_gguf(tmp_path / "fake.gguf", KEY)
    assert len(conversions) == 2
    assert cache_entry_is_valid(entry)


def test_gguf_file_loads_through_cache(conversions, tmp_path, tiny_models):
    """A file with the GGUF header is converted once and then loaded from the cache."""
    fake = tmp_path / "tiny.gguf"
    fake.write_bytes(b"GGUF" + bytes(60))
    first = load_model(str(fake), device="cpu")
    second = load_model(str(fake), device="cpu")
    assert len(conversions) == 1
    assert torch.equal(logits_of(first.model), logits_of(second.model))
    assert torch.equal(logits_of(first.model), logits_of(tiny_models["llama_tied"].model))


# --- tying ----------------------------------------------------------------------------------------


def test_tied_same_tensor():
    weight = torch.randn(7, 5)
    assert embeddings_are_tied(weight, weight)


def test_tied_equal_copy():
    weight = torch.randn(7, 5)
    assert embeddings_are_tied(weight, weight.clone())


def test_untied_different_values():
    weight = torch.randn(7, 5)
    other = weight.clone()
    other[3, 2] += 1e-3
    assert not embeddings_are_tied(weight, other)


def test_untied_different_shapes():
    assert not embeddings_are_tied(torch.zeros(7, 5), torch.zeros(8, 5))


def fresh_llama(tied: bool):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(tiny_config("llama", tied))


def test_flag_alone_does_not_tie():
    model = fresh_llama(tied=False)
    model.config.tie_word_embeddings = True
    assert adapter_for(model).tied is False


def test_shared_weight_ties_without_flag():
    model = fresh_llama(tied=False)
    model.lm_head.weight = model.model.embed_tokens.weight
    model.config.tie_word_embeddings = False
    assert adapter_for(model).tied is True


def test_loaded_untied_model_untied(tiny_models):
    assert tiny_models["llama_untied"].adapter.tied is False


def test_loaded_tied_model_tied(tiny_models):
    assert tiny_models["llama_tied"].adapter.tied is True


# --- catalogue -----------------------------------------------------------------------------------


def test_catalogue_lists_both_models():
    assert [row["name"] for row in catalogue_status()] == ["smollm2-135m", "gemma3-270m"]


def test_catalogue_paths_in_cache():
    for row in catalogue_status():
        assert Path(row["cache_path"]).parent == cache_root()


def test_catalogue_fresh_cache_empty():
    assert not any(row["cached"] for row in catalogue_status())


def test_catalogue_block_counts():
    blocks = {row["name"]: row["blocks"] for row in catalogue_status()}
    assert blocks == {"smollm2-135m": 30, "gemma3-270m": 18}


@pytest.mark.real_model
def test_catalogue_entry_prepared():
    entry = prepare_catalogue_model("smollm2-135m")
    assert cache_entry_is_valid(entry)
    assert entry.parent == cache_root()
