"""Modules that moved: journals and Temporal histories written by an earlier version name
classes by their module path (error types, redactors, guards), and must still resolve after a
module moved or became private."""

from __future__ import annotations

import importlib
from types import ModuleType

MOVED: dict[str, str] = {}
"""Old module path → where it is now."""


def import_module(name: str) -> ModuleType:
    """``importlib.import_module``, following a module that moved."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError:
        new = MOVED.get(name)
        if new is None:
            raise
        return importlib.import_module(new)
