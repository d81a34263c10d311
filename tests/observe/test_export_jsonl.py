"""Export/import of runs as JSONL: round trip, idempotence, filters, and corrupt files refused
with the file and line named and nothing written."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import bandmaster as bm
from bandmaster.cli._app import app
from bandmaster.store._sqlite import SQLiteStore
from bandmaster.store.archive import archive
from bandmaster.store.export import export_runs, import_runs, read_records


@bm.step
async def double(x: int) -> int:
    if x < 0:
        raise ValueError("negative input")
    return 2 * x


@bm.workflow(name="export_wf")
async def export_wf(x: int) -> int:
    y = await double(x)
    extra = await bm.wait_for("go", timeout=30)
    return y + int(extra)


async def _journal(path: Path) -> list[str]:
    """Four completed runs (a step, a signal wait, bm.now) and one failed run."""
    ids = []
    async with bm.Engine(path, workflows=[export_wf], poll_interval=0.02) as engine:
        for x in range(4):
            terms: dict[str, Any] = {"priority": 3, "tenant": "acme", "budget_usd": 0.5} if x == 1 else {}
            handle = await engine.start(export_wf, x, **terms)
            await handle.signal("go", 100)
            assert await handle.result() == 2 * x + 100
            ids.append(handle.id)
        failed = await engine.start(export_wf, -1)
        with pytest.raises(bm.RunFailed):
            await failed.result()
        ids.append(failed.id)
    return ids


def _rows(path: Path) -> dict[str, object]:
    conn = sqlite3.connect(path)
    try:
        return {
            "runs": conn.execute(
                "SELECT id, workflow, version, status, input, output, error, fmt, created_at, updated_at, "
                "ended_at, cancel_requested, claims FROM runs ORDER BY id"
            ).fetchall(),
            "steps": conn.execute("SELECT * FROM steps ORDER BY run_id, seq").fetchall(),
            "signals": conn.execute(
                "SELECT run_id, name, payload, fmt, created_at, consumed_seq FROM signals ORDER BY run_id, id"
            ).fetchall(),
        }
    finally:
        conn.close()


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
async def test_round_trip_is_exact_and_import_idempotent(tmp_path: Path, suffix: str) -> None:
    source, target = tmp_path / "source.db", tmp_path / "target.db"
    ids = await _journal(source)
    out = tmp_path / f"runs{suffix}"
    assert export_runs(source, out) == 5
    records = list(read_records(out))
    assert [r.run.id for r in records] == ids  # oldest first
    assert records[0].format == "bandmaster.run"
    assert records[0].version == 1
    assert [s.kind for s in records[0].steps] == ["step", "wait"]
    assert records[0].signals[0].name == "go"
    # values decode to what the workflow saw
    assert records[1].run.decode("input") == [1]
    assert records[1].run.decode("output") == 102
    assert records[1].steps[0].decode("output") == 2
    assert records[1].signals[0].decode("payload") == 100
    assert records[4].run.decode("error")["message"].endswith("negative input")
    assert (records[1].run.priority, records[1].run.tenant, records[1].run.budget_usd) == (3, "acme", 0.5)

    SQLiteStore(target).close()
    assert import_runs(target, [out]).model_dump() == {"imported": 5, "skipped": 0}
    assert _rows(target) == _rows(source)
    again = import_runs(target, [out])
    assert again.model_dump() == {"imported": 0, "skipped": 5}
    assert _rows(target) == _rows(source)  # nothing duplicated

    # the imported runs read back through the engine exactly as in the source
    async with bm.Engine(source, worker=False) as a, bm.Engine(target, worker=False) as b:
        for run_id in ids:
            assert (await b.describe(run_id)) == (await a.describe(run_id))
        assert (await b.describe(ids[1])).terms == bm.engine.RunTerms(3, "acme", 0.5)


async def test_filters(tmp_path: Path) -> None:
    source = tmp_path / "source.db"
    ids = await _journal(source)
    failed = tmp_path / "failed.jsonl"
    assert export_runs(source, failed, status="failed") == 1
    assert [r.run.id for r in read_records(failed)] == [ids[-1]]
    assert export_runs(source, tmp_path / "none.jsonl", workflow="nope") == 0
    assert export_runs(source, tmp_path / "recent.jsonl", since="1h") == 5
    assert export_runs(source, tmp_path / "old.jsonl", older_than="1h") == 0
    with pytest.raises(bm.InvalidInput, match="not a run status"):
        export_runs(source, tmp_path / "x.jsonl", status="done")


async def test_corrupt_lines_are_refused_naming_the_line(tmp_path: Path) -> None:
    source, target = tmp_path / "source.db", tmp_path / "target.db"
    await _journal(source)
    good = tmp_path / "good.jsonl"
    export_runs(source, good)
    lines = good.read_text().splitlines()
    SQLiteStore(target).close()

    def broken(name: str, line3: str) -> Path:
        path = tmp_path / name
        path.write_text("\n".join([*lines[:2], line3, *lines[3:]]) + "\n")
        return path

    cases = {
        "json": (broken("json.jsonl", lines[2][:-5]), r"json\.jsonl:3: not valid JSON"),
        "format": (broken("format.jsonl", '{"hello": 1}'), r"format\.jsonl:3: not a bandmaster run record"),
        "version": (
            broken("version.jsonl", lines[2].replace('"version":1', '"version":9')),
            r"version\.jsonl:3: record version 9.*upgrade bandmaster",
        ),
        "field": (
            broken("field.jsonl", lines[2].replace('"status":"completed"', '"status":"done"')),
            r"field\.jsonl:3: field run\.status",
        ),
    }
    for path, message in cases.values():
        with pytest.raises(bm.InvalidArchive, match=message):
            import_runs(target, [good, path])
    truncated = tmp_path / "cut.jsonl.gz"
    data = gzip.compress(good.read_bytes())
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(bm.InvalidArchive, match=r"cut\.jsonl\.gz: unreadable.*truncated"):
        import_runs(target, [truncated])
    with pytest.raises(bm.InvalidArchive, match=r"is a directory; pass its files"):
        import_runs(target, [tmp_path])
    with pytest.raises(bm.InvalidArchive, match=r"absent\.jsonl: no such file"):
        import_runs(target, [tmp_path / "absent.jsonl"])
    # every file is checked before anything is written: the good file was not imported either
    assert _rows(target)["runs"] == []


async def test_cli_export_import(tmp_path: Path) -> None:
    source, target = tmp_path / "source.db", tmp_path / "new" / "target.db"
    await _journal(source)
    out = tmp_path / "all.jsonl.gz"
    runner = CliRunner()
    exported = runner.invoke(app, ["export", "--db", str(source), "--to", str(out), "--status", "completed"])
    assert exported.exit_code == 0, exported.output
    assert "exported 4 runs" in exported.output
    target.parent.mkdir()
    imported = runner.invoke(app, ["import", str(out), "--db", str(target)])
    assert imported.exit_code == 0, imported.output
    assert "imported 4 runs, skipped 0" in imported.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"format": "bandmaster.run", "version": 1}) + "\n")
    refused = runner.invoke(app, ["import", str(bad), "--db", str(target)])
    assert refused.exit_code == 2
    assert "bad.jsonl:1: field run" in refused.output


async def test_a_run_in_flight_is_imported_ready_to_resume(tmp_path: Path) -> None:
    source, target = tmp_path / "source.db", tmp_path / "target.db"
    await _journal(source)
    conn = sqlite3.connect(source)
    conn.execute(
        "INSERT INTO runs (id, workflow, status, input, fmt, created_at, updated_at, lease_owner, "
        "lease_expires) VALUES ('busy', 'export_wf', 'running', '[3]', 'json1', 1, 1, 'host/1/x', 9e9)"
    )
    conn.commit()
    conn.close()
    out = tmp_path / "busy.jsonl"
    assert export_runs(source, out, status="running") == 1
    assert import_runs(target, [out]).imported == 1  # a new journal is created
    async with bm.Engine(target, workflows=[export_wf], poll_interval=0.02) as engine:
        info = await engine.describe("busy")
        assert info.lease_owner is None
        await engine.signal("busy", "go", 1)
        deadline = asyncio.get_running_loop().time() + 15
        while (info := await engine.describe("busy")).status != "completed":
            assert asyncio.get_running_loop().time() < deadline, (info.status, info.error)
            await asyncio.sleep(0.02)
        assert info.output == 7


@bm.workflow(name="approved_wf")
async def approved_wf(ticket: str) -> str:
    decision = await bm.approval("review", {"ticket": ticket}, timeout=30, default="send")
    return decision.action


async def test_approvals_and_their_audit_travel_with_the_run(tmp_path: Path) -> None:
    source, copy, archived = tmp_path / "source.db", tmp_path / "copy.db", tmp_path / "archive"
    async with bm.Engine(source, workflows=[approved_wf], poll_interval=0.02) as engine:
        handle = await engine.start(approved_wf, "T-1")
        for _ in range(500):  # until the run waits on its approval
            if await engine.approvals.list():
                break
            await asyncio.sleep(0.02)
        await engine.approvals.override(handle.id, by="alice", comment="not PHI")
        assert await handle.result() == "override"

    def related(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        with sqlite3.connect(path) as conn:
            approvals = conn.execute(
                "SELECT run_id, name, action, decided_by, comment FROM approvals"
            ).fetchall()
            audit = conn.execute("SELECT run_id, who, event, action FROM approval_audit").fetchall()
        return approvals, audit

    before = related(source)
    assert before[0] == [(handle.id, "review", "override", "alice", "not PHI")]
    export_runs(source, tmp_path / "runs.jsonl")
    import_runs(copy, [tmp_path / "runs.jsonl"])
    assert related(copy) == before  # an import restores who decided what

    await asyncio.sleep(0.05)
    archive(source, older_than=0.01, to=archived)
    assert related(source) == ([], [])  # nothing of the run is left behind
    import_runs(tmp_path / "restored.db", sorted(archived.iterdir()))
    assert related(tmp_path / "restored.db") == before


async def test_related_rows_naming_unknown_tables_or_columns_are_refused(tmp_path: Path) -> None:
    # The names in a record's "related" rows go into SQL: only real tables and columns pass.
    source, target = tmp_path / "source.db", tmp_path / "target.db"
    await _journal(source)
    good = tmp_path / "good.jsonl"
    export_runs(source, good)
    first = json.loads(good.read_text().splitlines()[0])
    SQLiteStore(target).close()
    cases = {
        "table": ({"runs; DROP TABLE steps; --": [{"x": 1}]}, "unknown related table"),
        "column": (
            {"run_headers": [{"headers": "{}", "evil) VALUES (1); --": 1}]},
            "run_headers has no columns",
        ),
    }
    for name, (related, message) in cases.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text(json.dumps({**first, "related": related}) + "\n")
        with pytest.raises(bm.InvalidArchive, match=re.escape(message)):
            import_runs(target, [path])
    assert _rows(target)["runs"] == []  # the failed import wrote nothing
    with sqlite3.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM steps").fetchone() == (0,)
