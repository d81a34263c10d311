"""The SQLite journal: schema, pragmas, lease fencing, group commit, claiming, signals."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bandmaster.errors import RunNotFound, StoreError
from bandmaster.store import RunRow, SQLiteStore, StepRow, resolve_db_path
from bandmaster.store._schema import SCHEMA_VERSION

OWNER = "host/1/aaaa"
OTHER = "host/2/bbbb"


def run_row(
    run_id: str,
    *,
    workflow: str = "wf",
    status: str = "queued",
    ready_at: float | None = 0.0,
    owner: str | None = None,
    lease_expires: float | None = None,
) -> RunRow:
    now = time.time()
    return RunRow(
        id=run_id,
        workflow=workflow,
        version=None,
        status=status,  # type: ignore[arg-type]
        input="[]",
        output=None,
        error=None,
        created_at=now,
        updated_at=now,
        ended_at=None,
        ready_at=ready_at,
        lease_owner=owner,
        lease_expires=lease_expires,
        cancel_requested=False,
        claims=0,
    )


def step_row(run_id: str, seq: int, *, status: str = "completed", output: str | None = '"ok"') -> StepRow:
    now = time.time()
    return StepRow(run_id, seq, f"s{seq}", "step", status, output, None, 1, now, now, None)  # type: ignore[arg-type]


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(db_path)
    yield s
    s.close()


async def owned_run(store: SQLiteStore, run_id: str = "r1", owner: str = OWNER) -> None:
    assert await store.insert_run(
        run_row(run_id, status="running", ready_at=None, owner=owner, lease_expires=time.time() + 60)
    )


class CommitCounter:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.statements: list[str] = []
        conn.set_trace_callback(self.statements.append)

    @property
    def commits(self) -> int:
        return sum(1 for s in self.statements if s.strip().upper() == "COMMIT")


# --- schema and pragmas ------------------------------------------------------------------


async def test_schema_version_is_set(store: SQLiteStore, db_path: Path) -> None:
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 1
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runs", "steps", "signals"} <= tables


async def test_wal_mode_is_on(store: SQLiteStore, db_path: Path) -> None:
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with sqlite3.connect(db_path) as conn:  # WAL is persistent: other connections see it too
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_reopening_keeps_data_and_does_not_migrate_again(db_path: Path) -> None:
    first = SQLiteStore(db_path)
    assert await first.insert_run(run_row("kept"))
    first.close()
    second = SQLiteStore(db_path)
    try:
        row = second.get_run("kept")
        assert row is not None
        assert row.workflow == "wf"
    finally:
        second.close()


async def test_newer_schema_is_refused(db_path: Path) -> None:
    SQLiteStore(db_path).close()
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer"):
        SQLiteStore(db_path)


async def test_parent_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "journal.db"
    SQLiteStore(path).close()
    assert path.exists()


def test_resolve_db_path(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_db_path("x/y.db") == Path("x/y.db")
    assert resolve_db_path("sqlite:///rel.db") == Path("rel.db")
    assert resolve_db_path("sqlite:////abs/x.db") == Path("/abs/x.db")
    monkeypatch.setenv("BANDMASTER_DB", "/tmp/from-env.db")
    assert resolve_db_path(None) == Path("/tmp/from-env.db")
    monkeypatch.delenv("BANDMASTER_DB")
    assert resolve_db_path(None) == Path("bandmaster.db")
    with pytest.raises(ValueError, match="bad database URL"):
        resolve_db_path("sqlite://host/x.db")


# --- runs ---------------------------------------------------------------------------------


async def test_insert_run_is_idempotent(store: SQLiteStore) -> None:
    assert await store.insert_run(run_row("r1", workflow="a"))
    assert not await store.insert_run(run_row("r1", workflow="b"))
    row = store.get_run("r1")
    assert row is not None
    assert row.workflow == "a"
    assert store.get_run("missing") is None


async def test_list_runs_filters_and_orders_newest_first(store: SQLiteStore) -> None:
    for i, (workflow, status) in enumerate([("a", "queued"), ("b", "queued"), ("a", "waiting")]):
        row = run_row(f"r{i}", workflow=workflow, status=status)
        row.created_at = 1000.0 + i
        await store.insert_run(row)
    assert [r.id for r in store.list_runs()] == ["r2", "r1", "r0"]
    assert [r.id for r in store.list_runs(workflow="a")] == ["r2", "r0"]
    assert [r.id for r in store.list_runs(status="queued")] == ["r1", "r0"]
    assert [r.id for r in store.list_runs(status="queued", workflow="a")] == ["r0"]
    assert [r.id for r in store.list_runs(limit=1, offset=1)] == ["r1"]


# --- lease fencing ----------------------------------------------------------------------


async def test_record_step_by_the_owner_is_written(store: SQLiteStore) -> None:
    await owned_run(store)
    assert await store.record_step(step_row("r1", 1), OWNER)
    steps = store.load_steps("r1")
    assert list(steps) == [1]
    assert steps[1].output == '"ok"'


async def test_record_step_by_a_non_owner_is_fenced(store: SQLiteStore) -> None:
    await owned_run(store)
    assert not await store.record_step(step_row("r1", 1), OTHER)
    assert store.load_steps("r1") == {}


async def test_record_step_for_an_unowned_run_is_fenced(store: SQLiteStore) -> None:
    assert await store.insert_run(run_row("r1"))  # queued, nobody holds it
    assert not await store.record_step(step_row("r1", 1), OWNER)
    assert store.load_steps("r1") == {}


async def test_completed_step_rows_are_immutable(store: SQLiteStore) -> None:
    await owned_run(store)
    assert await store.record_step(step_row("r1", 1, output='"first"'), OWNER)
    assert not await store.record_step(step_row("r1", 1, output='"second"'), OWNER)
    assert store.load_steps("r1")[1].output == '"first"'


async def test_a_waiting_row_may_be_completed_once(store: SQLiteStore) -> None:
    await owned_run(store)
    assert await store.record_step(step_row("r1", 1, status="waiting", output=None), OWNER)
    assert not await store.record_step(step_row("r1", 1, status="waiting", output=None), OWNER)
    assert await store.record_step(step_row("r1", 1, output='"done"'), OWNER)
    assert not await store.record_step(step_row("r1", 1, output='"again"'), OWNER)
    row = store.load_steps("r1")[1]
    assert (row.status, row.output) == ("completed", '"done"')


async def test_finish_and_suspend_are_fenced(store: SQLiteStore) -> None:
    await owned_run(store)
    assert not await store.finish_run("r1", OTHER, "completed", '"x"', None)
    assert not await store.suspend_run("r1", OTHER, None)
    row = store.get_run("r1")
    assert row is not None
    assert (row.status, row.lease_owner) == ("running", OWNER)
    assert await store.finish_run("r1", OWNER, "completed", '"x"', None)
    row = store.get_run("r1")
    assert row is not None
    assert (row.status, row.output, row.lease_owner, row.lease_expires) == ("completed", '"x"', None, None)
    assert row.ended_at is not None


# --- group commit ------------------------------------------------------------------------


async def test_writes_enqueued_in_one_loop_turn_share_one_commit(store: SQLiteStore) -> None:
    await owned_run(store)
    counter = CommitCounter(store._conn)
    futures = [store.record_step(step_row("r1", seq), OWNER) for seq in range(1, 51)]
    assert counter.commits == 0  # nothing written until the loop turns
    assert await asyncio.gather(*futures) == [True] * 50
    assert counter.commits == 1
    assert len(store.load_steps("r1")) == 50


async def test_writes_in_separate_loop_turns_commit_separately(store: SQLiteStore) -> None:
    await owned_run(store)
    counter = CommitCounter(store._conn)
    for seq in (1, 2, 3):
        assert await store.record_step(step_row("r1", seq), OWNER)
    assert counter.commits == 3


async def test_one_batch_mixes_fenced_and_accepted_writes(store: SQLiteStore) -> None:
    await owned_run(store)
    counter = CommitCounter(store._conn)
    ok, fenced = store.record_step(step_row("r1", 1), OWNER), store.record_step(step_row("r1", 2), OTHER)
    assert await asyncio.gather(ok, fenced) == [True, False]
    assert counter.commits == 1
    assert list(store.load_steps("r1")) == [1]


async def test_flush_writes_pending_batch_at_once(store: SQLiteStore) -> None:
    await owned_run(store)
    future = store.record_step(step_row("r1", 1), OWNER)
    store.flush()
    assert future.done()
    assert future.result() is True


async def test_close_flushes_pending_writes(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    await owned_run(store)
    store.record_step(step_row("r1", 1), OWNER, wait=False)
    store.close()
    reopened = SQLiteStore(db_path)
    try:
        assert list(reopened.load_steps("r1")) == [1]
    finally:
        reopened.close()


# --- claiming -----------------------------------------------------------------------------


async def test_claim_takes_ready_runs_and_sets_the_lease(store: SQLiteStore) -> None:
    await store.insert_run(run_row("r1"))
    before = time.time()
    claimed = store.claim_runs(OWNER, ["wf@"], {"wf": None}, limit=10, lease=30.0)
    assert [r.id for r in claimed] == ["r1"]
    row = claimed[0]
    assert (row.status, row.lease_owner, row.claims) == ("running", OWNER, 1)
    assert row.lease_expires is not None
    assert row.lease_expires >= before + 30.0
    assert store.claim_runs(OTHER, ["wf@"], {"wf": None}, limit=10, lease=30.0) == []  # held, lease live


async def test_claim_skips_runs_of_unknown_workflows(store: SQLiteStore) -> None:
    await store.insert_run(run_row("ghost-run", workflow="ghost"))
    await store.insert_run(run_row("known-run", workflow="known"))
    assert [r.id for r in store.claim_runs(OWNER, ["known@"], {"known": None}, limit=10, lease=30.0)] == [
        "known-run"
    ]
    assert store.claim_runs(OWNER, [], {}, limit=10, lease=30.0) == []
    ghost = store.get_run("ghost-run")
    assert ghost is not None
    assert (ghost.status, ghost.lease_owner) == ("queued", None)


async def test_claim_skips_runs_not_ready_yet(store: SQLiteStore) -> None:
    await store.insert_run(run_row("later", status="waiting", ready_at=time.time() + 3600))
    await store.insert_run(run_row("on-signal", status="waiting", ready_at=None))
    assert store.claim_runs(OWNER, ["wf@"], {"wf": None}, limit=10, lease=30.0) == []


async def test_claim_respects_the_limit(store: SQLiteStore) -> None:
    for i in range(5):
        await store.insert_run(run_row(f"r{i}"))
    assert len(store.claim_runs(OWNER, ["wf@"], {"wf": None}, limit=2, lease=30.0)) == 2
    assert len(store.claim_runs(OWNER, ["wf@"], {"wf": None}, limit=10, lease=30.0)) == 3


async def test_expired_leases_are_claimable(store: SQLiteStore) -> None:
    await store.insert_run(
        run_row("stale", status="running", ready_at=None, owner=OTHER, lease_expires=time.time() - 1)
    )
    await store.insert_run(
        run_row("live", status="running", ready_at=None, owner=OTHER, lease_expires=time.time() + 60)
    )
    claimed = store.claim_runs(OWNER, ["wf@"], {"wf": None}, limit=10, lease=30.0)
    assert [r.id for r in claimed] == ["stale"]
    assert claimed[0].lease_owner == OWNER
    # the old owner is fenced out from now on
    assert not await store.record_step(step_row("stale", 1), OTHER)
    assert await store.record_step(step_row("stale", 1), OWNER)


async def test_expire_leases_makes_runs_of_dead_owners_claimable(store: SQLiteStore) -> None:
    await owned_run(store, "r1", owner=OTHER)
    assert store.running_owners() == [OTHER]
    assert store.expire_leases([OTHER]) == 1
    assert [r.id for r in store.claim_runs(OWNER, ["wf@"], {"wf": None}, limit=10, lease=30.0)] == ["r1"]


async def test_heartbeat_extends_leases_and_reports_cancel_requests(store: SQLiteStore) -> None:
    for run_id in ("r1", "given-up"):
        await store.insert_run(
            run_row(run_id, status="running", ready_at=None, owner=OWNER, lease_expires=time.time() + 0.5)
        )
    assert store.heartbeat(OWNER, 60.0, ["r1"]) == []
    row = store.get_run("r1")
    assert row is not None
    assert row.lease_expires is not None
    assert row.lease_expires > time.time() + 30
    # A run the owner no longer executes (it gave it up) is not renewed: others may take it.
    given_up = store.get_run("given-up")
    assert given_up is not None
    assert given_up.lease_expires is not None
    assert given_up.lease_expires < time.time() + 1
    assert store.runs_taken_over(OWNER, ["r1"]) == []
    assert store.runs_taken_over("someone-else", ["r1"]) == ["r1"]
    assert store.request_cancel("r1") == "running"
    assert store.heartbeat(OWNER, 60.0, ["r1"]) == ["r1"]


async def test_release_runs_requeues_them(store: SQLiteStore) -> None:
    await owned_run(store)
    store.release_runs(OWNER, ["r1"])
    row = store.get_run("r1")
    assert row is not None
    assert (row.status, row.lease_owner) == ("queued", None)
    assert [r.id for r in store.claim_runs(OTHER, ["wf@"], {"wf": None}, limit=10, lease=30.0)] == ["r1"]


# --- signals and cancellation ---------------------------------------------------------------


async def wait_row(store: SQLiteStore, name: str = "go", seq: int = 1) -> None:
    """The journal row of a ``bm.wait_for(name)`` that has not been answered yet."""
    row = StepRow("r1", seq, name, "wait", "waiting", None, None, 1, time.time(), None, None)
    assert await store.record_step(row, OWNER)


async def test_signal_wakes_a_waiting_run(store: SQLiteStore) -> None:
    await owned_run(store)
    await wait_row(store)
    assert await store.suspend_run("r1", OWNER, None)
    row = store.get_run("r1")
    assert row is not None
    assert (row.status, row.lease_owner, row.ready_at) == ("waiting", None, None)
    assert store.add_signal("r1", "go", '"payload"') == "waiting"
    row = store.get_run("r1")
    assert row is not None
    assert row.status == "queued"
    assert row.ready_at is not None
    assert store.next_signal("r1", "go") is not None
    assert store.next_signal("r1", "other") is None


async def test_signals_are_delivered_in_order_and_consumed_once(store: SQLiteStore) -> None:
    await owned_run(store)
    store.add_signal("r1", "go", "1")
    store.add_signal("r1", "go", "2")
    assert [p for _, p in store.pending_signals("r1", "go")] == ["1", "2"]
    first_id, payload = store.next_signal("r1", "go")  # type: ignore[misc]
    assert payload == "1"
    wait = StepRow("r1", 1, "go", "wait", "completed", "1", None, 1, time.time(), time.time(), None)
    assert await store.record_step(wait, OWNER, consume_signal=first_id)
    assert store.next_signal("r1", "go") == (first_id + 1, "2")


async def test_a_signal_pending_at_suspension_requeues_the_run(store: SQLiteStore) -> None:
    await owned_run(store)
    store.add_signal("r1", "go", None)  # arrives while the run executes
    await wait_row(store)
    assert await store.suspend_run("r1", OWNER, None)
    row = store.get_run("r1")
    assert row is not None
    assert row.status == "queued"


async def test_a_signal_for_another_wait_does_not_requeue_the_run(store: SQLiteStore) -> None:
    await owned_run(store)
    store.add_signal("r1", "later", None)  # meant for a wait the run has not reached
    await wait_row(store, "go")
    assert await store.suspend_run("r1", OWNER, None)
    assert store.run_status("r1") == "waiting"
    store.add_signal("r1", "other", None)
    assert store.run_status("r1") == "waiting"
    store.add_signal("r1", "go", None)
    assert store.run_status("r1") == "queued"


async def test_signal_to_missing_or_finished_run(store: SQLiteStore) -> None:
    with pytest.raises(RunNotFound):
        store.add_signal("nope", "go", None)
    await owned_run(store)
    await store.finish_run("r1", OWNER, "completed", None, None)
    assert store.add_signal("r1", "go", None) == "completed"
    assert store.pending_signals("r1", "go") == []  # not kept


async def test_request_cancel(store: SQLiteStore) -> None:
    with pytest.raises(RunNotFound):
        store.request_cancel("nope")
    await store.insert_run(run_row("queued"))
    assert store.request_cancel("queued") == "cancelled"
    row = store.get_run("queued")
    assert row is not None
    assert row.ended_at is not None
    await owned_run(store, "running")
    assert store.request_cancel("running") == "running"
    row = store.get_run("running")
    assert row is not None
    assert row.cancel_requested
    store.cancel_claimed("running", OWNER)
    row = store.get_run("running")
    assert row is not None
    assert (row.status, row.lease_owner) == ("cancelled", None)
