"""Shared type aliases."""

from __future__ import annotations

from typing import Literal, TypeAlias

RunStatus: TypeAlias = Literal["queued", "running", "waiting", "completed", "failed", "cancelled"]
StepStatus: TypeAlias = Literal["waiting", "completed", "failed"]

TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
