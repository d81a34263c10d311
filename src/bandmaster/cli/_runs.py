"""Run ids as people type them, and what a run is waiting for.

An id may be shortened to any unique prefix (as git does with commits), and may end with the
ellipsis a narrow terminal put there. A waiting run is described by what it waits on and the
command that would move it on.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from bandmaster.engine import RunInfo
from bandmaster.errors import UsageError

CANDIDATES_SHOWN = 5


class FindsRuns(Protocol):
    async def run_ids_starting(self, prefix: str, *, limit: int = 10) -> list[str]: ...


async def resolve_run_id(engine: FindsRuns, text: str) -> str:
    """The full id of the one run whose id is ``text`` or begins with it. Text that matches
    nothing is returned as given, so the backend's own "no run" error names it."""
    prefix = text.removesuffix("…")
    if not prefix:
        raise UsageError("give a run id (or the start of one)")
    found = await engine.run_ids_starting(prefix, limit=CANDIDATES_SHOWN + 1)
    if prefix in found or not found:
        return prefix
    if len(found) == 1:
        return found[0]
    shown = ", ".join(found[:CANDIDATES_SHOWN]) + (", …" if len(found) > CANDIDATES_SHOWN else "")
    raise UsageError(f"run id {prefix!r} is ambiguous: it starts {shown}; give more characters")


@dataclass(frozen=True)
class Waiting:
    """What a waiting run waits on: a signal, an approval, or a timer."""

    kind: str
    name: str
    until: datetime | None = None

    def describe(self, run_id: str, db: str | None) -> str:
        where = f" --db {shlex.quote(db)}" if db else ""
        run = shlex.quote(run_id)
        if self.kind == "approval":
            name = f" --name {shlex.quote(self.name)}"
            return (
                f"run {run_id} is waiting for approval {self.name!r}: decide it with "
                f"`bandmaster approvals approve {run}{name}{where}` (or `approvals override`)"
            )
        if self.kind == "signal":
            return (
                f"run {run_id} is waiting for signal {self.name!r}: send it with "
                f"`bandmaster signal {run} {shlex.quote(self.name)} 'JSON'{where}`"
            )
        until = f" until {self.until:%Y-%m-%d %H:%M:%S} UTC" if self.until else ""
        return f"run {run_id} is sleeping{until}; it resumes on its own"


def waiting_on(info: RunInfo) -> Waiting | None:
    """The wait the run is parked on, from its step timeline (``None`` when it is not waiting)."""
    approvals = {s.seq: s.name for s in info.steps if s.kind == "approval"}
    for step in reversed(info.steps):
        if step.status != "waiting":
            continue
        if step.kind == "sleep":
            wake_at = step.meta.get("wake_at")
            until = datetime.fromtimestamp(wake_at, UTC) if isinstance(wake_at, int | float) else None
            return Waiting("timer", "sleep", until)
        signal = str(step.meta.get("signal") or step.name)
        kind, _, rest = signal.partition(":")
        name, _, seq = rest.rpartition(":")
        if kind == "approval" and seq.isdigit() and approvals.get(int(seq)) == name:
            return Waiting("approval", name)
        return Waiting("signal", signal)
    return None
