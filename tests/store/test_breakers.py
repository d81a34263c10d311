"""Breakers counted in the journal (``store.BreakerStore`` under ``JournalBreakers``): two
stores on one journal file stand for two worker processes (each its own SQLite connection and
its own mapping of the revision file). The process-level tests are in
tests/conformance/test_shared_breakers.py."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import bandmaster as bm
from bandmaster.calls._journal_breakers import JournalBreakers
from bandmaster.store import SQLiteStore

POLICY = bm.Breaker(failures=3, window=60, reset=30)


class At:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


Two = tuple[JournalBreakers, JournalBreakers]


def publish(journal: Path, revision: int) -> None:
    """Write ``revision`` to the journal's revision file, as a writer about to commit does."""
    Path(f"{journal}-breakers").write_bytes(revision.to_bytes(8, "little"))


@pytest.fixture
def two(tmp_path: Path) -> tuple[JournalBreakers, JournalBreakers]:
    path = tmp_path / "journal.db"
    return JournalBreakers(SQLiteStore(path)), JournalBreakers(SQLiteStore(path))


async def test_failures_of_two_workers_add_up_to_exactly_n(
    two: Two,
) -> None:
    a, b = two
    clock = At(100.0)
    assert (await a.admit("m", POLICY, clock))[0] == "go"
    assert await a.settle("m", POLICY, clock, "failure", trial=False) == "closed"
    assert await b.settle("m", POLICY, clock, "failure", trial=False) == "closed"
    assert (await a.admit("m", POLICY, clock))[0] == "go"
    assert await b.settle("m", POLICY, clock, "failure", trial=False) == "open", "the third, from b"
    admission, state = await a.admit("m", POLICY, clock)
    assert (admission, state.status, state.failures, state.opened_at) == ("refused", "open", 3, 100.0)
    assert await a.settle("m", POLICY, clock, "failure", trial=False) == "open", "in flight: counted"
    assert (await b.admit("m", POLICY, clock))[1].failures == 4


async def test_one_trial_across_workers_and_its_success_closes_for_both(
    two: Two,
) -> None:
    a, b = two
    clock = At(100.0)
    for _ in range(3):
        await a.settle("m", POLICY, clock, "failure", trial=False)
    clock.now = 130.0
    assert (await b.admit("m", POLICY, clock))[0] == "trial"
    assert (await a.admit("m", POLICY, clock))[0] == "refused", "b holds the trial"
    assert await a.settle("m", POLICY, clock, "success", trial=False) == "half_open", "not the trial"
    assert await b.settle("m", POLICY, clock, "success", trial=True) == "closed"
    assert (await a.admit("m", POLICY, clock))[0] == "go"


async def test_a_lost_trial_claim_lapses_after_reset(two: Two) -> None:
    a, b = two
    clock = At(100.0)
    for _ in range(3):
        await a.settle("m", POLICY, clock, "failure", trial=False)
    clock.now = 130.0
    assert (await a.admit("m", POLICY, clock))[0] == "trial"  # then a dies: no outcome comes
    clock.now = 159.9
    assert (await b.admit("m", POLICY, clock))[0] == "refused"
    clock.now = 160.0
    assert (await b.admit("m", POLICY, clock))[0] == "trial"


async def test_a_healthy_model_writes_nothing(two: Two) -> None:
    a, _ = two
    clock = At(100.0)
    for _ in range(5):
        assert (await a.admit("m", POLICY, clock))[0] == "go"
        assert await a.settle("m", POLICY, clock, "success", trial=False) == "closed"
    assert a.rows.revision() == 0
    await a.settle("m", POLICY, clock, "failure", trial=False)
    await a.admit("m", POLICY, clock)
    await a.settle("m", POLICY, clock, "success", trial=False)  # clears the count: a change
    assert a.rows.revision() == 2
    assert (await a.admit("m", POLICY, clock))[1].failures == 0


def sqlite_statements(breakers: JournalBreakers) -> list[str]:
    """Every statement ``breakers`` runs on its journal connection from now on."""
    seen: list[str] = []
    breakers.rows.store._conn.set_trace_callback(seen.append)
    return seen


async def test_admission_reads_sqlite_only_after_a_change(two: Two) -> None:
    a, b = two
    clock = At(100.0)
    await a.admit("m", POLICY, clock)  # the first view
    statements = sqlite_statements(a)
    for _ in range(3):
        await a.admit("m", POLICY, clock)
        await a.settle("m", POLICY, clock, "success", trial=False)
    assert statements == [], "a current view is checked against the published revision only"
    await b.settle("m", POLICY, clock, "failure", trial=False)
    assert (await a.admit("m", POLICY, clock))[1].failures == 1
    assert any("FROM breakers" in s for s in statements), "b's change made a read the rows again"


async def test_a_revision_published_but_never_committed_costs_reads_not_correctness(
    two: Two, tmp_path: Path
) -> None:
    a, b = two
    clock = At(100.0)
    await a.admit("m", POLICY, clock)
    # A writer killed between publishing its revision and committing leaves one SQLite never got.
    publish(tmp_path / "journal.db", 7)
    statements = sqlite_statements(a)
    assert (await a.admit("m", POLICY, clock))[0] == "go"
    assert statements, "the view cannot be trusted: a reads SQLite"
    for _ in range(3):
        await b.settle("m", POLICY, clock, "failure", trial=False)
    assert (await a.admit("m", POLICY, clock))[0] == "refused"


async def test_the_journal_keeps_the_count_and_the_open_time(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    breakers = JournalBreakers(SQLiteStore(path))
    for at in (1.0, 2.0, 3.0):
        await breakers.settle("m", POLICY, At(at), "failure", trial=False)
    conn = sqlite3.connect(path)
    try:
        row = conn.execute(
            "SELECT status, opened_at, failures, recent FROM breakers WHERE key = 'm'"
        ).fetchone()
    finally:
        conn.close()
    assert row == ("open", 3.0, 3, "[]")
