"""Tokenization and readable token labels."""

from __future__ import annotations

import re

import pytest

from rshift.tokens import EmptyTextError, token_bytes, token_labels, tokenize, visible

REPLACEMENT = "\ufffd"


@pytest.fixture(scope="module")
def tiny_tokenizer(tiny_models):
    return tiny_models["llama_tied"].tokenizer


def labels_of(tokenizer, text: str) -> list[str]:
    return tokenize(tokenizer, text).labels


def joined_text(labels: list[str]) -> str:
    """Rebuild the text from labels: drop hex byte pieces, undo the whitespace markers."""
    complete = re.sub(r"<[0-9a-f]{2}>", "", "".join(labels))
    return complete.replace("␣", " ").replace("↵", "\n")


# --- visible whitespace -----------------------------------------------------------


def test_visible_space():
    assert visible(" a") == "␣a"


def test_visible_newline():
    assert visible("\n") == "↵"


def test_visible_tab():
    assert visible("\t") == "⇥"


def test_visible_keeps_letters():
    assert visible("abc") == "abc"


# --- the tiny byte-level tokenizer ----------------------------------------------------------


def test_tiny_labels_one_per_token(tiny_tokenizer):
    text = tokenize(tiny_tokenizer, "The cat sat on the mat.")
    assert len(text.labels) == len(text)


def test_tiny_space_is_visible(tiny_tokenizer):
    assert "␣sat" in labels_of(tiny_tokenizer, "The cat sat")


def test_tiny_labels_spell_text(tiny_tokenizer):
    text = "The cat sat on the mat."
    assert joined_text(labels_of(tiny_tokenizer, text)) == text


def test_tiny_newline_label(tiny_tokenizer):
    assert "↵" in labels_of(tiny_tokenizer, "The\ncat")


def test_tiny_split_character_completes(tiny_tokenizer):
    """日 and 本 are three bytes each and unknown to the tiny vocabulary."""
    text = tokenize(tiny_tokenizer, "日本")
    assert len(text) == 6
    assert text.labels[2] == "日"
    assert text.labels[5] == "本"


def test_tiny_split_pieces_in_hex(tiny_tokenizer):
    labels = labels_of(tiny_tokenizer, "日本")
    assert labels[0] == "<e6>"


def test_tiny_text_before_split_byte(tiny_tokenizer):
    """The token 'aÃ' is the letter a plus the first byte of ï, and its label shows both."""
    labels = labels_of(tiny_tokenizer, "naïve")
    assert "a<c3>" in labels


def test_tiny_no_replacement_character(tiny_tokenizer):
    labels = labels_of(tiny_tokenizer, "café 日本 naïve ünïcödé ✓")
    assert not any(REPLACEMENT in label for label in labels)


def test_tiny_accented_text_spelled(tiny_tokenizer):
    text = "café naïve"
    assert joined_text(labels_of(tiny_tokenizer, text)) == text


def test_tiny_special_token_kept(tiny_tokenizer):
    eos = tiny_tokenizer.eos_token_id
    assert token_labels(tiny_tokenizer, [eos]) == ["<|endoftext|>"]


def test_tiny_special_token_resets_pending(tiny_tokenizer):
    """Bytes left over before a special token do not leak into later labels."""
    first_byte = tiny_tokenizer("日")["input_ids"][0]
    later = tiny_tokenizer("The")["input_ids"]
    ids = [first_byte, tiny_tokenizer.eos_token_id, *later]
    assert token_labels(tiny_tokenizer, ids)[-1] == "The"


def test_tiny_token_bytes(tiny_tokenizer):
    token = tiny_tokenizer.convert_ids_to_tokens(tiny_tokenizer(" the")["input_ids"])[0]
    assert token_bytes(tiny_tokenizer, token) == b" the"


@pytest.mark.parametrize("text", ["", " ", "\n\n", "\t \r\n"])
def test_empty_text_raises(tiny_tokenizer, text):
    with pytest.raises(EmptyTextError):
        tokenize(tiny_tokenizer, text)


def test_non_string_raises(tiny_tokenizer):
    with pytest.raises(EmptyTextError):
        tokenize(tiny_tokenizer, None)


def test_truncation_counts_dropped(tiny_tokenizer):
    total = len(tokenize(tiny_tokenizer, "The cat sat on the mat."))
    text = tokenize(tiny_tokenizer, "The cat sat on the mat.", max_tokens=3)
    assert len(text) == 3
    assert text.dropped == total - 3


def test_truncation_warns_with_count(tiny_tokenizer):
    total = len(tokenize(tiny_tokenizer, "The cat sat on the mat."))
    text = tokenize(tiny_tokenizer, "The cat sat on the mat.", max_tokens=3)
    assert len(text.warnings) == 1
    assert f"dropped {total - 3}" in text.warnings[0]


def test_no_truncation_at_limit(tiny_tokenizer):
    total = len(tokenize(tiny_tokenizer, "The cat sat on the mat."))
    text = tokenize(tiny_tokenizer, "The cat sat on the mat.", max_tokens=total)
    assert text.dropped == 0
    assert text.warnings == []


# --- SmolLM2 (byte-level BPE) ---------------------------------------------------------------


@pytest.mark.real_model
def test_smollm2_hello_world(smollm2):
    assert labels_of(smollm2.tokenizer, "Hello world") == ["Hello", "␣world"]


@pytest.mark.real_model
def test_smollm2_newline(smollm2):
    assert labels_of(smollm2.tokenizer, "a\nb") == ["a", "↵", "b"]


@pytest.mark.real_model
def test_smollm2_split_character(smollm2):
    """日 is split over two byte tokens, and its label sits on the second."""
    text = tokenize(smollm2.tokenizer, "日本")
    assert len(text) == 3
    assert text.labels[1] == "日"
    assert text.labels[2] == "本"


@pytest.mark.real_model
def test_smollm2_split_piece_hex(smollm2):
    assert labels_of(smollm2.tokenizer, "日本")[0] == "<e6><97>"


@pytest.mark.real_model
def test_smollm2_no_replacement_character(smollm2):
    labels = labels_of(smollm2.tokenizer, "Hello world\n日本語 ok, café ✓ 🙂")
    assert not any(REPLACEMENT in label for label in labels)


@pytest.mark.real_model
def test_smollm2_emoji_completes(smollm2):
    labels = labels_of(smollm2.tokenizer, "🙂")
    assert labels[-1] == "🙂"


# --- Gemma (SentencePiece) ----------------------------------------------------------------


@pytest.mark.gemma
def test_gemma_keeps_bos(gemma3):
    assert labels_of(gemma3.tokenizer, "Hello world")[0] == "<bos>"


@pytest.mark.gemma
def test_gemma_space_marker(gemma3):
    assert labels_of(gemma3.tokenizer, "Hello world") == ["<bos>", "Hello", "␣world"]


@pytest.mark.gemma
def test_gemma_no_raw_marker(gemma3):
    labels = labels_of(gemma3.tokenizer, "The quick brown fox jumps over the lazy dog.")
    assert not any("▁" in label for label in labels)


@pytest.mark.gemma
def test_gemma_newline(gemma3):
    assert "↵" in labels_of(gemma3.tokenizer, "a\nb")


@pytest.mark.gemma
def test_gemma_no_replacement_character(gemma3):
    labels = labels_of(gemma3.tokenizer, "Hello world\n日本語 ok, café ✓ 🙂")
    assert not any(REPLACEMENT in label for label in labels)
