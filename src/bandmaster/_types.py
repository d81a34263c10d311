"""Shared type aliases."""

from __future__ import annotations

import re
from typing import Literal, TypeAlias

RunStatus: TypeAlias = Literal["queued", "running", "waiting", "completed", "failed", "cancelled"]
StepStatus: TypeAlias = Literal["waiting", "completed", "failed"]

TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})

RunOrder: TypeAlias = Literal["newest", "oldest", "longest", "shortest"]
"""How ``Backend.list`` sorts runs: by creation time, or by duration (so far, for a running run)."""
RUN_ORDERS: tuple[RunOrder, ...] = ("newest", "oldest", "longest", "shortest")

URL_NAME_RULE = "1-200 characters from A-Z a-z 0-9 and - _ . ~ : @ + =, starting with a letter or digit"
URL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-_.~:@+=]{0,199}")
"""A name a caller chooses that must be one URL path segment as it is, with no escaping: run
ids (``engine.run_id``) and new registry aliases (``/api/v1/models/{alias}``)."""
