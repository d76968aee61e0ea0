"""Tests for rshift.prompts: decoding, format parsing and user-facing errors."""

from __future__ import annotations

import ast
import codecs
import dataclasses
import sys
from pathlib import Path

import pytest

from rshift import prompts as prompts_module
from rshift.prompts import (
    MAX_PROMPTS,
    MAX_UPLOAD_BYTES,
    ParsedPrompts,
    PromptFileError,
    decode_upload,
    parse_prompt_file,
)

# Each case: (data, filename, keyword arguments, phrase the message must contain).
BAD_INPUTS = [
    pytest.param(b"", "p.txt", {}, "is empty", id="zero-bytes"),
    pytest.param(b"x" * 11, "p.txt", {"max_bytes": 10}, "upload limit", id="too-large"),
    pytest.param(b"ab\x00cd", "p.txt", {}, "binary data", id="nul-bytes"),
    pytest.param(b"\x89PNG\r\n\x1a\n\x00\xff", "p.txt", {}, "binary data", id="png-bytes"),
    pytest.param(b"caf\xe9", "p.txt", {}, "not valid UTF-8", id="undecodable"),
    pytest.param(codecs.BOM_UTF16_LE + b"a", "p.txt", {}, "UTF-16", id="truncated-utf16"),
    pytest.param(b"hi", "p.pdf", {}, ".txt, .csv, .jsonl or .json", id="unsupported-ext"),
    pytest.param(b"hi", "prompts", {}, "no file extension", id="no-extension"),
    pytest.param(b"  \n\t\n", "p.txt", {}, "no prompts", id="whitespace-only-txt"),
    pytest.param(b'["  ", ""]', "p.json", {}, "no prompts", id="whitespace-prompts-json"),
    pytest.param(b'{"text": " "}\n', "p.jsonl", {}, "no prompts", id="whitespace-prompt-jsonl"),
    pytest.param(b"prompt\n", "p.csv", {}, "no prompts", id="csv-header-only"),
    pytest.param(b"id,body\n1,hi\n", "p.csv", {}, "Columns found", id="csv-no-column"),
    pytest.param(b"prompt,id\nhi,1,2\n", "p.csv", {}, "line 2", id="csv-field-count"),
    pytest.param(b'prompt\n"ab"cd\n', "p.csv", {}, "line 2", id="csv-stray-quote"),
    pytest.param(b'prompt\nok\n"open\n', "p.csv", {}, "line 3", id="csv-unclosed-quote"),
    pytest.param(b'"ok"\n{bad\n', "p.jsonl", {}, "line 2", id="jsonl-invalid"),
    pytest.param(b'{"id": 1}\n', "p.jsonl", {}, "no 'prompt' or 'text' key", id="jsonl-no-key"),
    pytest.param(b'{"prompt": 3}\n', "p.jsonl", {}, "not a string", id="jsonl-number-value"),
    pytest.param(b"[1, 2]\n", "p.jsonl", {}, "found a list", id="jsonl-list-line"),
    pytest.param(b"{", "p.json", {}, "not valid JSON", id="json-invalid"),
    pytest.param(b'{"items": []}', "p.json", {}, "Expected a list", id="json-no-prompts-key"),
    pytest.param(b'"hello"', "p.json", {}, "Expected a list", id="json-bare-string"),
    pytest.param(b'["a", 3]', "p.json", {}, "item 2", id="json-bad-item"),
]


def parse(data: bytes, filename: str = "p.txt", **kwargs: int) -> ParsedPrompts:
    return parse_prompt_file(data, filename, **kwargs)


def error_for(data: bytes, filename: str = "p.txt", **kwargs: int) -> str:
    with pytest.raises(PromptFileError) as info:
        parse_prompt_file(data, filename, **kwargs)
    return str(info.value)


# Bad inputs


@pytest.mark.parametrize(("data", "filename", "kwargs", "phrase"), BAD_INPUTS)
def test_bad_input_raises(data: bytes, filename: str, kwargs: dict, phrase: str) -> None:
    with pytest.raises(PromptFileError) as info:
        parse_prompt_file(data, filename, **kwargs)
    assert phrase in str(info.value)


@pytest.mark.parametrize(("data", "filename", "kwargs", "phrase"), BAD_INPUTS)
def test_bad_input_names_file(data: bytes, filename: str, kwargs: dict, phrase: str) -> None:
    with pytest.raises(PromptFileError) as info:
        parse_prompt_file(data, filename, **kwargs)
    assert f"'{filename}'" in str(info.value)


def test_error_is_value_error() -> None:
    assert issubclass(PromptFileError, ValueError)


def test_oversize_reports_megabytes() -> None:
    message = error_for(b"x" * (MAX_UPLOAD_BYTES + 1))
    assert "5.0 MB" in message
    assert "5,242,881 bytes" in message


def test_oversize_reports_kilobytes() -> None:
    message = error_for(b"x" * 3072, max_bytes=2048)
    assert "3.0 KB" in message
    assert "2.0 KB upload limit" in message


def test_size_at_limit_accepted() -> None:
    assert parse(b"x" * 10, max_bytes=10).prompts == ["x" * 10]


def test_csv_missing_column_lists_columns() -> None:
    message = error_for(b"id, Body \n1,hi\n", "p.csv")
    assert "'id', 'Body'" in message


def test_csv_semicolon_header_hint() -> None:
    message = error_for(b"id;prompt\n1;hi\n", "p.csv")
    assert "other than commas" in message


def test_csv_error_line_after_multiline() -> None:
    # The quoted field spans lines 2-3, so the bad row starts on line 4.
    message = error_for(b'prompt,id\n"a\nb",1\nc,2,3\n', "p.csv")
    assert "line 4" in message


def test_jsonl_error_line_after_blanks() -> None:
    message = error_for(b'"a"\n\n\n[]\n', "p.jsonl")
    assert "line 4" in message


def test_json_missing_key_explained() -> None:
    message = error_for(b'{"items": []}', "p.json")
    assert "without a 'prompts' key" in message


def test_all_empty_reports_skips() -> None:
    message = error_for(b'["", " "]', "p.json")
    assert "skipped 2 empty prompts" in message


def test_decode_binary_without_filename() -> None:
    with pytest.raises(PromptFileError) as info:
        decode_upload(b"\x00\x01\x02")
    assert "The uploaded file" in str(info.value)


def test_utf16_with_nul_rejected() -> None:
    with pytest.raises(PromptFileError) as info:
        decode_upload(codecs.BOM_UTF16_LE + "a\x00b".encode("utf-16-le"), "p.txt")
    assert "binary" in str(info.value)


@pytest.mark.parametrize(
    "kwargs", [{"max_bytes": 0}, {"max_prompts": 0}], ids=["max-bytes", "max-prompts"]
)
def test_limit_below_one_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="must be >= 1"):
        parse(b"hi", **kwargs)


# Encodings and line ends


@pytest.mark.parametrize(
    ("bom", "codec", "expected"),
    [
        pytest.param(codecs.BOM_UTF8, "utf-8", "utf-8-sig", id="utf8-bom"),
        pytest.param(codecs.BOM_UTF16_LE, "utf-16-le", "utf-16", id="utf16-le"),
        pytest.param(codecs.BOM_UTF16_BE, "utf-16-be", "utf-16", id="utf16-be"),
        pytest.param(codecs.BOM_UTF32_LE, "utf-32-le", "utf-32", id="utf32-le"),
        pytest.param(codecs.BOM_UTF32_BE, "utf-32-be", "utf-32", id="utf32-be"),
    ],
)
def test_bom_encoding_detected(bom: bytes, codec: str, expected: str) -> None:
    result = parse(bom + "héllo\nwörld ✓\n".encode(codec))
    assert result.encoding == expected
    assert result.prompts == ["héllo", "wörld ✓"]


def test_plain_utf8_detected() -> None:
    result = parse("naïve\n".encode())
    assert result.encoding == "utf-8"
    assert result.prompts == ["naïve"]


def test_decode_returns_text_encoding() -> None:
    assert decode_upload(codecs.BOM_UTF8 + b"hi") == ("hi", "utf-8-sig")


def test_decode_crlf_normalised() -> None:
    assert decode_upload(b"a\r\nb\r\n")[0] == "a\nb\n"


def test_decode_lone_cr_normalised() -> None:
    assert decode_upload(b"a\rb\r")[0] == "a\nb\n"


def test_txt_crlf_lines() -> None:
    assert parse(b"one\r\ntwo\r\n").prompts == ["one", "two"]


def test_txt_lone_cr_lines() -> None:
    assert parse(b"one\rtwo\r").prompts == ["one", "two"]


def test_txt_crlf_paragraphs() -> None:
    assert parse(b"a\r\nb\r\n\r\nc\r\n").prompts == ["a\nb", "c"]


# .txt


def test_txt_one_per_line() -> None:
    result = parse(b"first prompt\n  second prompt  \nthird\n")
    assert result.prompts == ["first prompt", "second prompt", "third"]
    assert result.warnings == []


def test_txt_paragraph_mode() -> None:
    data = b"line one\nline two\n\n\n  \npara two\n\nthird\n"
    assert parse(data).prompts == ["line one\nline two", "para two", "third"]


def test_txt_last_paragraph_unterminated() -> None:
    assert parse(b"a\n\nb\nc").prompts == ["a", "b\nc"]


def test_txt_outer_blanks_keep_lines() -> None:
    assert parse(b"\n\na\nb\n\n\n").prompts == ["a", "b"]


def test_txt_whitespace_line_separates() -> None:
    assert parse(b"a\nb\n \t \nc\n").prompts == ["a\nb", "c"]


def test_txt_extension_case_insensitive() -> None:
    assert parse(b"hi\n", "P.TXT").prompts == ["hi"]


# .csv


def test_csv_prompt_column() -> None:
    data = b'id,prompt\n1,hello\n2,"a, b"\n3,"say ""hi"""\n'
    assert parse(data, "p.csv").prompts == ["hello", "a, b", 'say "hi"']


def test_csv_text_column_normalised() -> None:
    assert parse(b"ID, Text \n1,  hi  \n", "p.csv").prompts == ["hi"]


def test_csv_prompt_beats_text() -> None:
    assert parse(b"text,Prompt\nno,yes\n", "p.csv").prompts == ["yes"]


def test_csv_multiline_quoted_field() -> None:
    assert parse(b'prompt\n"line 1\nline 2"\n', "p.csv").prompts == ["line 1\nline 2"]


def test_csv_crlf_line_ends() -> None:
    assert parse(b"prompt,id\r\na,1\r\nb,2\r\n", "p.csv").prompts == ["a", "b"]


def test_csv_empty_cell_warning() -> None:
    result = parse(b"id,prompt\n1,\n2,x\n3,  \n", "p.csv")
    assert result.prompts == ["x"]
    assert result.warnings == ["skipped 2 rows with an empty 'prompt' cell (lines 2, 4)"]


def test_csv_inner_blank_line_warning() -> None:
    result = parse(b"prompt\na\n\nb\n\n\n", "p.csv")
    assert result.prompts == ["a", "b"]
    assert result.warnings == ["skipped 1 blank line"]


# .jsonl


def test_jsonl_strings_and_objects() -> None:
    data = b'"a"\n{"prompt": "b", "id": 1}\n{"text": "c"}\n'
    assert parse(data, "p.jsonl").prompts == ["a", "b", "c"]


def test_jsonl_prompt_beats_text() -> None:
    assert parse(b'{"text": "no", "prompt": "yes"}\n', "p.jsonl").prompts == ["yes"]


def test_jsonl_blank_lines_skipped() -> None:
    result = parse(b'"a"\n\n  \n"b"\n\n', "p.jsonl")
    assert result.prompts == ["a", "b"]
    assert result.warnings == ["skipped 2 blank lines"]


def test_jsonl_empty_prompt_warning() -> None:
    result = parse(b'"a"\n{"prompt": "  "}\n', "p.jsonl")
    assert result.prompts == ["a"]
    assert result.warnings == ["skipped 1 empty prompt"]


# .json


def test_json_list_of_strings() -> None:
    assert parse(b'[" a ", "b"]', "p.json").prompts == ["a", "b"]


def test_json_list_of_objects() -> None:
    assert parse(b'[{"prompt": "a"}, {"text": "b"}]', "p.json").prompts == ["a", "b"]


def test_json_prompts_object() -> None:
    data = b'{"name": "set", "prompts": ["a", {"prompt": "b"}]}'
    assert parse(data, "p.json").prompts == ["a", "b"]


def test_json_multiline_prompt_kept() -> None:
    assert parse(b'["a\\nb"]', "p.json").prompts == ["a\nb"]


# Prompt cap


def test_cap_keeps_first_prompts() -> None:
    result = parse(b"1\n2\n3\n4\n5\n", max_prompts=3)
    assert result.prompts == ["1", "2", "3"]


def test_cap_adds_warning() -> None:
    result = parse(b"1\n2\n3\n4\n5\n", max_prompts=3)
    assert any("kept the first 3 of 5 prompts" in warning for warning in result.warnings)


def test_cap_exact_count_silent() -> None:
    assert parse(b"1\n2\n3\n", max_prompts=3).warnings == []


def test_default_cap_applies() -> None:
    data = "\n".join(f"p{i}" for i in range(MAX_PROMPTS + 50)).encode()
    result = parse(data)
    assert len(result.prompts) == MAX_PROMPTS
    assert result.prompts[-1] == f"p{MAX_PROMPTS - 1}"


# Module contract


def test_default_limits_values() -> None:
    assert MAX_UPLOAD_BYTES == 5 * 1024 * 1024
    assert MAX_PROMPTS == 200


def test_parsed_prompts_frozen() -> None:
    result = parse(b"hi\n")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.encoding = "latin-1"  # type: ignore[misc]


def test_module_imports_stdlib_only() -> None:
    tree = ast.parse(Path(prompts_module.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    roots = {name.split(".")[0] for name in imported}
    assert roots <= set(sys.stdlib_module_names) | {"__future__"}
