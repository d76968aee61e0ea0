"""Thread-scoped forward hooks that are always removed.

Cached models are shared by every browser session, and each session runs in
its own thread. A hook registered here only acts in the thread that
registered it; a forward pass in any other thread passes through it
untouched. Every hook is removed when the ``HookSet`` context exits, also on
an exception.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def first_tensor(output: Any) -> torch.Tensor:
    """Return the hidden states from a module output (a tensor or a tuple starting with one)."""
    return output[0] if isinstance(output, tuple) else output


def replace_first(output: Any, tensor: torch.Tensor) -> Any:
    """Return ``output`` with its hidden states replaced, keeping its container type."""
    if isinstance(output, tuple):
        return (tensor, *output[1:])
    return tensor


def module_input(args: tuple, kwargs: dict) -> torch.Tensor:
    """Return the hidden states a module was called with, positionally or by keyword."""
    return args[0] if args else kwargs["hidden_states"]


class HookSet:
    """Register forward hooks that act only in the current thread; remove them on exit."""

    def __init__(self) -> None:
        self._owner = threading.get_ident()
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def _mine(self) -> bool:
        return threading.get_ident() == self._owner

    def pre(self, module: nn.Module, hook: Callable[[tuple, dict], Any]) -> None:
        """Add ``hook(args, kwargs)`` before ``module`` runs; a non-None result replaces args."""

        def guarded(_module, args, kwargs):
            if self._mine():
                return hook(args, kwargs)
            return None

        self._handles.append(module.register_forward_pre_hook(guarded, with_kwargs=True))

    def post(self, module: nn.Module, hook: Callable[[tuple, dict, Any], Any]) -> None:
        """Add ``hook(args, kwargs, output)`` after ``module`` runs; non-None replaces output."""

        def guarded(_module, args, kwargs, output):
            if self._mine():
                return hook(args, kwargs, output)
            return None

        self._handles.append(module.register_forward_hook(guarded, with_kwargs=True))

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __enter__(self) -> HookSet:
        return self

    def __exit__(self, *exc_info) -> None:
        self.remove()
