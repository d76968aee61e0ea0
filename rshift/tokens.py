"""Tokenization with truncation notices, and readable labels for each token.

Labels show each token's own text: byte-level markers become visible spaces
and newlines, and a character split over several byte tokens is shown whole
on the token that completes it, with the bytes of the earlier pieces in hex.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache

import torch

logger = logging.getLogger(__name__)

VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}


class EmptyTextError(ValueError):
    """The text has no content to analyse."""


@dataclass(frozen=True)
class TokenizedText:
    """One text as the model's tokenizer produces it, with its own special tokens.

    Attributes:
        ids: ``(positions,)`` token ids.
        tokens: the tokenizer's own token strings.
        labels: readable label of each token (may repeat; index by position).
        dropped: how many tokens were cut off by the token limit.
        warnings: notices for the user, such as truncation.
    """

    ids: torch.Tensor
    tokens: list[str]
    labels: list[str]
    dropped: int = 0
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.ids.numel())


def tokenize(
    tokenizer, text: str, max_tokens: int | None = None, context: int | None = None
) -> TokenizedText:
    """Tokenize ``text`` with default special tokens, truncating to ``max_tokens``.

    ``context`` is the model's context length; when it is what limits the
    text, the notice says so instead of suggesting a higher token cap.

    Raises:
        EmptyTextError: for empty or whitespace-only text.
    """
    if not isinstance(text, str) or not text.strip():
        raise EmptyTextError("The text is empty. Enter or upload some text to analyse.")

    ids = tokenizer(text)["input_ids"]
    warnings = []
    dropped = 0
    if max_tokens is not None and len(ids) > max_tokens:
        dropped = len(ids) - max_tokens
        ids = ids[:max_tokens]
        warnings.append(
            f"The text has {max_tokens + dropped} tokens; kept the first {max_tokens} and "
            f"dropped {dropped}. "
            + (
                f"The model's context is {context} tokens."
                if context is not None and max_tokens >= context
                else "Raise the token cap to analyse more."
            )
        )
        logger.warning(warnings[-1])

    tokens = tokenizer.convert_ids_to_tokens(ids)
    return TokenizedText(
        ids=torch.tensor(ids, dtype=torch.long),
        tokens=list(tokens),
        labels=token_labels(tokenizer, ids),
        dropped=dropped,
        warnings=warnings,
    )


def token_labels(tokenizer, ids: list[int]) -> list[str]:
    """Return a readable label per token; a split character is shown on its last piece."""
    special = set(tokenizer.all_special_ids)
    tokens = tokenizer.convert_ids_to_tokens(list(ids))
    labels = []
    pending = b""
    for token_id, token in zip(ids, tokens, strict=True):
        if token is None:
            # Ids past the tokenizer's vocabulary occur when the embedding
            # matrix is padded; the lens can still rank them.
            labels.append(f"[{token_id}]")
            pending = b""
            continue
        if token_id in special:
            labels.append(token)
            pending = b""
            continue
        own = token_bytes(tokenizer, token)
        text, rest = _decode_prefix(pending + own)
        # Show only this token's share of an unfinished character.
        piece_hex = "".join(f"<{byte:02x}>" for byte in rest[-len(own) :] if own)
        labels.append(visible(text) + piece_hex if text or piece_hex else "∅")
        pending = rest
    return labels


def _decode_prefix(data: bytes) -> tuple[str, bytes]:
    """Decode the longest valid UTF-8 prefix; return it and the undecoded tail."""
    for cut in range(len(data), max(len(data) - 4, -1), -1):
        try:
            return data[:cut].decode("utf-8"), data[cut:]
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace"), b""


def visible(text: str) -> str:
    """Make whitespace visible so each token's boundaries show in a chart label."""
    return "".join(VISIBLE.get(char, char) for char in text)


def token_bytes(tokenizer, token: str) -> bytes:
    """Return the raw bytes a token string stands for.

    Byte-level BPE (GPT-2, SmolLM2, Llama 3) maps each byte to a printable
    character; SentencePiece (Gemma) writes spaces as '▁' and unknown bytes as
    '<0xNN>'.
    """
    if _is_byte_level(tokenizer):
        decoder = _byte_decoder()
        if all(char in decoder for char in token):
            return bytes(decoder[char] for char in token)
    if len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
        return bytes([int(token[3:5], 16)])
    return token.replace("▁", " ").encode("utf-8")


def _is_byte_level(tokenizer) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    return "ByteLevel" in repr(backend.decoder)


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """Invert the GPT-2 byte-to-printable-character table."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = list(printable)
    shift = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + shift)
            shift += 1
    return {chr(code): byte for byte, code in zip(printable, codes, strict=True)}
