"""Small text helpers for messages that join a library error with advice."""

from __future__ import annotations


def sentence(error: object) -> str:
    """Return ``str(error)`` ending in a full stop, so advice can follow it."""
    text = str(error).strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."
