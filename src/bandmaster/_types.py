"""Shared type aliases."""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

JSON: TypeAlias = Any
"""A value that serialises to JSON (dicts, lists, str, numbers, bool, None, pydantic models)."""

RunId: TypeAlias = str
Seconds: TypeAlias = float

RunStatus: TypeAlias = Literal["queued", "running", "waiting", "completed", "failed", "cancelled"]
StepStatus: TypeAlias = Literal["waiting", "completed", "failed"]

TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
