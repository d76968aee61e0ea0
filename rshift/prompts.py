"""Parse and validate uploaded prompt files for the batch analysis page.

The format is chosen by file extension (case-insensitive):

* ``.txt``: one prompt per line, or one prompt per paragraph when blank lines separate
  the text.
* ``.csv``: a header row with a ``prompt`` or ``text`` column.
* ``.jsonl``: one JSON value per line, either a string or an object with a ``prompt`` or
  ``text`` key.
* ``.json``: a list of such values, or an object with a ``prompts`` list.

Every problem the user can fix raises :class:`PromptFileError`, whose message is meant to be
shown as is. Only the standard library is used, so the CLI and the tests can load this module
without Streamlit or torch.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePath

logger = logging.getLogger(__name__)

MAX_UPLOAD_BYTES: int = 5 * 1024 * 1024
MAX_PROMPTS: int = 200

SUPPORTED_EXTENSIONS: tuple[str, ...] = (".txt", ".csv", ".jsonl", ".json")

# The UTF-32 LE mark begins with the UTF-16 LE mark, so the longer marks are tried first.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_FIELD_NAMES: tuple[str, ...] = ("prompt", "text")
_JSON_SHAPES = (
    "a list of strings, a list of objects with a 'prompt' or 'text' key, "
    "or an object with a 'prompts' list"
)
_ADD_PROMPTS_HINT = "Add at least one non-empty prompt and upload the file again."
_MAX_LISTED_LINES = 5
_KB = 1024
_MB = 1024 * 1024

_Parsed = tuple[list[str], list[str]]
_Parser = Callable[[str, str], _Parsed]


class PromptFileError(ValueError):
    """A prompt file that cannot be used.

    ``str(error)`` is a message for the user that says what is wrong and what to do.
    """


@dataclass(frozen=True)
class ParsedPrompts:
    """Prompts read from one uploaded file.

    Attributes:
        prompts: Non-empty, stripped prompts in file order.
        warnings: Human-readable notices about content that was skipped or dropped.
        encoding: The detected encoding: "utf-8", "utf-8-sig", "utf-16" or "utf-32".
    """

    prompts: list[str]
    warnings: list[str]
    encoding: str


class _BadValue(Exception):
    """Error for a JSON value that contains no usable prompt. The message gives the reason."""


# Public API


def decode_upload(data: bytes, filename: str = "") -> tuple[str, str]:
    """Decode uploaded bytes to text with ``\\n`` line ends.

    Args:
        data: The raw file content.
        filename: The uploaded file's name, used only in error messages.

    Returns:
        ``(text, encoding)``. A byte-order mark selects UTF-8, UTF-16 or UTF-32 (either byte
        order); without one the data must be UTF-8. CRLF and lone CR become ``\\n``.

    Raises:
        PromptFileError: The data looks binary (NUL characters) or cannot be decoded.
    """
    label = _label(filename)
    encoding = _detect_encoding(data)
    # Checked before decoding so that binary data is reported as binary, not as bad UTF-8.
    if encoding.startswith("utf-8") and b"\x00" in data:
        raise PromptFileError(_binary_message(label))
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise PromptFileError(_undecodable_message(label, encoding, exc)) from None
    if "\x00" in text:
        raise PromptFileError(_binary_message(label))
    return text.replace("\r\n", "\n").replace("\r", "\n"), encoding


def parse_prompt_file(
    data: bytes,
    filename: str,
    *,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_prompts: int = MAX_PROMPTS,
) -> ParsedPrompts:
    """Parse an uploaded prompt file, choosing the format by extension.

    Args:
        data: The raw file content.
        filename: The uploaded file's name; its extension selects the format.
        max_bytes: Largest accepted file size in bytes.
        max_prompts: Most prompts kept; extra prompts are dropped with a warning.

    Returns:
        The stripped, non-empty prompts in file order, with warnings and the encoding.

    Raises:
        PromptFileError: The file cannot be used. The message explains why.
        ValueError: ``max_bytes`` or ``max_prompts`` is below 1.
    """
    if max_bytes < 1 or max_prompts < 1:
        raise ValueError(f"max_bytes and max_prompts must be >= 1, got {max_bytes}, {max_prompts}")
    label = _label(filename)
    parser = _parser_for(filename, label)
    _check_size(data, label, max_bytes)
    text, encoding = decode_upload(data, filename)
    if not text.strip():
        raise PromptFileError(f"{label} contains no prompts, only whitespace. {_ADD_PROMPTS_HINT}")
    prompts, warnings = parser(text, label)
    if not prompts:
        raise PromptFileError(_no_prompts_message(label, warnings))
    prompts = _apply_cap(prompts, warnings, max_prompts)
    logger.debug("parsed %d prompts from %s (%s)", len(prompts), label, encoding)
    return ParsedPrompts(prompts=prompts, warnings=warnings, encoding=encoding)


# File-level checks and messages


def _label(filename: str) -> str:
    return f"'{filename}'" if filename else "The uploaded file"


def _parser_for(filename: str, label: str) -> _Parser:
    suffix = PurePath(filename).suffix.lower()
    parser = _PARSERS.get(suffix)
    if parser is None:
        found = f"'{suffix}'" if suffix else "no file extension"
        supported = ", ".join(SUPPORTED_EXTENSIONS[:-1]) + f" or {SUPPORTED_EXTENSIONS[-1]}"
        raise PromptFileError(
            f"{label} has an unsupported file type ({found}). Upload a {supported} file."
        )
    return parser


def _check_size(data: bytes, label: str, max_bytes: int) -> None:
    if not data:
        raise PromptFileError(f"{label} is empty (0 bytes). {_ADD_PROMPTS_HINT}")
    if len(data) > max_bytes:
        raise PromptFileError(
            f"{label} is {_format_size(len(data))} ({len(data):,} bytes), over the "
            f"{_format_size(max_bytes)} upload limit. Split it into smaller files."
        )


def _apply_cap(prompts: list[str], warnings: list[str], max_prompts: int) -> list[str]:
    """Return the first ``max_prompts`` prompts, appending a warning when some are dropped."""
    if len(prompts) > max_prompts:
        warnings.append(
            f"kept the first {max_prompts} of {len(prompts)} prompts; "
            "split the file to analyse the rest"
        )
    return prompts[:max_prompts]


def _format_size(size: int) -> str:
    if size >= _MB:
        return f"{size / _MB:.1f} MB"
    if size >= _KB:
        return f"{size / _KB:.1f} KB"
    return _plural(size, "byte")


def _detect_encoding(data: bytes) -> str:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding
    return "utf-8"


def _binary_message(label: str) -> str:
    return (
        f"{label} looks like binary data (it contains NUL bytes), not text. Upload a plain "
        "text file saved as UTF-8, or as UTF-16 or UTF-32 with a byte-order mark."
    )


def _undecodable_message(label: str, encoding: str, exc: UnicodeDecodeError) -> str:
    if encoding.startswith("utf-8"):
        byte = exc.object[exc.start]
        return (
            f"{label} is not valid UTF-8 text: byte 0x{byte:02x} at offset {exc.start} cannot "
            "be decoded. It may be a binary file or text in another encoding; save it as "
            "UTF-8 and upload it again."
        )
    name = encoding.upper()
    return (
        f"{label} starts with a {name} byte-order mark but could not be decoded as {name} "
        f"({exc.reason}). Save it as UTF-8 and upload it again."
    )


def _no_prompts_message(label: str, warnings: list[str]) -> str:
    detail = f" While reading it: {'; '.join(warnings)}." if warnings else ""
    return f"{label} contains no prompts.{detail} {_ADD_PROMPTS_HINT}"


# Shared helpers


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _format_lines(lines: list[int]) -> str:
    if len(lines) == 1:
        return f"line {lines[0]}"
    listed = ", ".join(str(line) for line in lines[:_MAX_LISTED_LINES])
    more = len(lines) - _MAX_LISTED_LINES
    return f"lines {listed} and {more} more" if more > 0 else f"lines {listed}"


def _drop_empty(candidates: Iterable[str]) -> tuple[list[str], int]:
    """Strip candidates and return the non-empty ones with the number of empty ones."""
    stripped = [candidate.strip() for candidate in candidates]
    prompts = [prompt for prompt in stripped if prompt]
    return prompts, len(stripped) - len(prompts)


def _skip_warnings(blank_lines: int, empty_prompts: int) -> list[str]:
    warnings = []
    if blank_lines:
        warnings.append(f"skipped {_plural(blank_lines, 'blank line')}")
    if empty_prompts:
        warnings.append(f"skipped {_plural(empty_prompts, 'empty prompt')}")
    return warnings


def _describe(value: object) -> str:
    """Return a plain-English name for a JSON value's type, such as "a number"."""
    if isinstance(value, bool):
        return "true/false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def _prompt_from_value(value: object) -> str:
    """Return the prompt held by a JSON string or object, or raise ``_BadValue``."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        raise _BadValue(
            f"expected a string or an object with a 'prompt' or 'text' key, "
            f"found {_describe(value)}"
        )
    for key in _FIELD_NAMES:
        if key in value:
            if isinstance(value[key], str):
                return value[key]
            raise _BadValue(f"the '{key}' value is {_describe(value[key])}, not a string")
    keys = ", ".join(f"'{key}'" for key in value) or "none"
    raise _BadValue(f"the object has no 'prompt' or 'text' key (keys found: {keys})")


# .txt


def _parse_txt(text: str, label: str) -> _Parsed:
    # Trailing spaces are invisible editor noise, so they never count as content.
    lines = [line.rstrip() for line in text.split("\n")]
    if _has_inner_blank_line(lines):
        return _paragraphs(lines), []
    return [line.strip() for line in lines if line.strip()], []


def _has_inner_blank_line(lines: list[str]) -> bool:
    """Return whether a blank line sits between two non-blank lines.

    Blank lines at the start or end do not count, so trailing newlines do not turn a
    one-prompt-per-line file into a single paragraph.
    """
    filled = [index for index, line in enumerate(lines) if line.strip()]
    return bool(filled) and len(filled) < filled[-1] - filled[0] + 1


def _paragraphs(lines: list[str]) -> list[str]:
    paragraphs: list[str] = []
    current: list[str] = []
    for line in [*lines, ""]:
        if line.strip():
            current.append(line)
        elif current:
            paragraphs.append("\n".join(current).strip())
            current = []
    return paragraphs


# .csv


def _parse_csv(text: str, label: str) -> _Parsed:
    rows = _csv_rows(text, label)
    header = next((row for _, row in rows if _row_has_content(row)), None)
    if header is None:
        return [], []
    return _csv_prompts(rows, header, _prompt_column(header, label), label)


def _csv_rows(text: str, label: str) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(first line number, row)`` pairs, turning csv errors into user messages."""
    # strict=True makes stray or unclosed quotes an error instead of a silently mangled row.
    # NOTE: a field longer than csv.field_size_limit() (131072 characters by default) is
    # reported as invalid CSV. The limit is process-wide, so it is left unchanged here.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    while True:
        # A quoted field may span lines, so errors point at the row's first line.
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise PromptFileError(
                f"{label} has invalid CSV at line {start}: {exc}. Fields that contain "
                "commas, quotes or line breaks must be wrapped in double quotes, with any "
                "quote inside them doubled."
            ) from None
        yield start, row


def _row_has_content(row: list[str]) -> bool:
    return any(cell.strip() for cell in row)


def _prompt_column(header: list[str], label: str) -> int:
    names = [cell.strip().lower() for cell in header]
    for name in _FIELD_NAMES:
        if name in names:
            return names.index(name)
    found = ", ".join(f"'{cell.strip()}'" for cell in header)
    hint = ""
    # A one-column header that contains a separator usually means the file is not comma-separated.
    if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
        hint = " The columns seem to be separated by something other than commas; use commas."
    raise PromptFileError(
        f"{label} has no 'prompt' or 'text' column. Columns found: {found}.{hint} Add a "
        "header row with a column named 'prompt' (or 'text') that holds the prompts."
    )


def _csv_prompts(
    rows: Iterator[tuple[int, list[str]]], header: list[str], column: int, label: str
) -> _Parsed:
    prompts: list[str] = []
    empty_lines: list[int] = []
    blank, pending_blank = 0, 0
    for line, row in rows:
        if not _row_has_content(row):
            pending_blank += 1
            continue
        # Blank rows at the end of the file are left-over newlines, not worth a warning.
        blank, pending_blank = blank + pending_blank, 0
        if len(row) != len(header):
            raise PromptFileError(
                f"{label} line {line} has {_plural(len(row), 'field')} but the header has "
                f"{len(header)}. Wrap fields that contain commas in double quotes."
            )
        if row[column].strip():
            prompts.append(row[column].strip())
        else:
            empty_lines.append(line)
    warnings = _skip_warnings(blank, 0)
    if empty_lines:
        warnings.append(
            f"skipped {_plural(len(empty_lines), 'row')} with an empty "
            f"'{header[column].strip()}' cell ({_format_lines(empty_lines)})"
        )
    return prompts, warnings


# .jsonl


def _parse_jsonl(text: str, label: str) -> _Parsed:
    candidates: list[str] = []
    blank, pending_blank = 0, 0
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            pending_blank += 1
            continue
        # Blank lines at the end of the file are left-over newlines, not worth a warning.
        blank, pending_blank = blank + pending_blank, 0
        candidates.append(_jsonl_line_prompt(line, number, label))
    prompts, empty = _drop_empty(candidates)
    return prompts, _skip_warnings(blank, empty)


def _jsonl_line_prompt(line: str, number: int, label: str) -> str:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise PromptFileError(
            f"{label} line {number} is not valid JSON ({exc.msg}: column {exc.colno}). "
            "Each line must hold one JSON string or one object with a 'prompt' or 'text' key."
        ) from None
    try:
        return _prompt_from_value(value)
    except _BadValue as exc:
        raise PromptFileError(
            f"{label} line {number}: {exc}. Each line must hold one JSON string or one "
            "object with a 'prompt' or 'text' key."
        ) from None


# .json


def _parse_json(text: str, label: str) -> _Parsed:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PromptFileError(
            f"{label} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}. "
            f"Expected {_JSON_SHAPES}."
        ) from None
    items = _json_items(data, label)
    prompts, empty = _drop_empty(
        _json_item_prompt(item, number, label) for number, item in enumerate(items, start=1)
    )
    return prompts, _skip_warnings(0, empty)


def _json_items(data: object, label: str) -> list[object]:
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and isinstance(data.get("prompts"), list):
        return data["prompts"]
    found = _describe(data)
    if isinstance(data, dict) and "prompts" in data:
        found += f" whose 'prompts' value is {_describe(data['prompts'])}"
    elif isinstance(data, dict):
        found += " without a 'prompts' key"
    raise PromptFileError(
        f"{label} has an invalid structure: found {found}. Expected {_JSON_SHAPES}."
    )


def _json_item_prompt(item: object, number: int, label: str) -> str:
    try:
        return _prompt_from_value(item)
    except _BadValue as exc:
        raise PromptFileError(
            f"{label} item {number} of the list (counting from 1): {exc}."
        ) from None


_PARSERS: dict[str, _Parser] = {
    ".txt": _parse_txt,
    ".csv": _parse_csv,
    ".jsonl": _parse_jsonl,
    ".json": _parse_json,
}
