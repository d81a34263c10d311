"""Journal rows and the interface every journal backend implements."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from bandmaster._types import RunStatus, StepStatus


@dataclass(slots=True)
class RunRow:
    id: str
    workflow: str
    version: str | None
    status: RunStatus
    input: str | None
    output: str | None
    error: str | None
    created_at: float
    updated_at: float
    ended_at: float | None
    ready_at: float | None
    lease_owner: str | None
    lease_expires: float | None
    cancel_requested: bool
    claims: int
    priority: int = 0
    tenant: str | None = None
    budget_usd: float | None = None


@dataclass(slots=True)
class StepRow:
    run_id: str
    seq: int
    name: str
    kind: str
    status: StepStatus
    output: str | None
    error: str | None
    attempts: int
    started_at: float
    ended_at: float | None
    meta: str | None


class JournalStore(Protocol):
    """Persistence for runs, steps and signals.

    Writes that belong to a running workflow are *fenced* by the lease: they succeed only
    while ``owner`` holds the run, and return ``False`` otherwise, so a worker that lost its
    lease can never overwrite the new owner's journal. They are batched: everything enqueued
    in one event-loop turn shares one transaction (group commit).
    """

    def insert_run(self, row: RunRow, *, headers: str | None = None) -> asyncio.Future[bool]: ...

    def record_step(
        self, row: StepRow, owner: str, *, consume_signal: int | None = None, wait: bool = True
    ) -> asyncio.Future[bool]: ...

    def finish_run(
        self, run_id: str, owner: str, status: RunStatus, output: str | None, error: str | None
    ) -> asyncio.Future[bool]: ...

    def suspend_run(self, run_id: str, owner: str, ready_at: float | None) -> asyncio.Future[bool]: ...

    def claim_runs(
        self, owner: str, keys: Sequence[str], pins: Mapping[str, str | None], limit: int, lease: float
    ) -> list[RunRow]: ...

    def heartbeat(self, owner: str, lease: float, run_ids: Sequence[str]) -> list[str]: ...

    def runs_taken_over(self, owner: str, run_ids: Sequence[str]) -> list[str]: ...

    def finished_among(self, run_ids: Sequence[str]) -> list[str]: ...

    def release_runs(self, owner: str, run_ids: Sequence[str], *, flush: bool = True) -> None: ...

    def expire_leases(self, owners: Sequence[str]) -> int: ...

    def running_owners(self) -> list[str]: ...

    def load_steps(self, run_id: str) -> dict[int, StepRow]: ...

    def get_run(self, run_id: str) -> RunRow | None: ...

    def run_headers(self, run_id: str) -> str | None: ...

    def list_runs(
        self, *, status: str | None, workflow: str | None, limit: int, offset: int
    ) -> list[RunRow]: ...

    def add_signal(self, run_id: str, name: str, payload: str | None) -> RunStatus: ...

    def next_signal(self, run_id: str, name: str) -> tuple[int, str | None] | None: ...

    def request_cancel(self, run_id: str) -> RunStatus: ...

    def close(self) -> None: ...
