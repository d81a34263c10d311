"""What ``bandmaster runs show`` prints under the step table for guarded model calls: each
attempt (model, number, error or "ok") and each rule violation, from the step's
``meta["guard"]``. Steps whose guards passed first time print nothing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bandmaster.cli._console import cut
from bandmaster.engine import StepInfo

MAX_ERROR = 100
"""Characters of an attempt's error shown per line on a terminal (whole when piped)."""


def guard_notes(steps: Iterable[StepInfo]) -> list[str]:
    lines: list[str] = []
    for step in steps:
        guard = step.meta.get("guard") if isinstance(step.meta, dict) else None
        if not isinstance(guard, dict):
            continue
        attempts: list[dict[str, Any]] = guard.get("attempts") or []
        violations: list[dict[str, Any]] = guard.get("violations") or []
        if len(attempts) <= 1 and not violations:
            continue
        lines.append(f"guard, seq {step.seq} ({step.name}): {len(attempts)} attempt(s)")
        for attempt in attempts:
            error = attempt.get("error")
            outcome = "ok" if error is None else _cut(str(error))
            lines.append(f"  {attempt.get('model')} #{attempt.get('attempt')}: {outcome}")
        for violation in violations:
            span = violation.get("span")
            where = f" at {span['start']}..{span['end']} {_cut(span['text'])!r}" if span else ""
            lines.append(
                f"  violation: {violation.get('rule')} ({violation.get('direction')}, "
                f"{violation.get('action')}){where}: {violation.get('detail')}"
            )
    return lines


def _cut(text: str) -> str:
    return cut(text, MAX_ERROR)
