"""The determinism check before a deploy: recorded runs (one finished, one waiting on a signal)
checked against changed code, through the library and through ``bandmaster replay
--determinism`` as a real subprocess."""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import bandmaster as bm
from bandmaster.replay import check_determinism
from bandmaster.testing import temp_engine

V1 = """
import bandmaster as bm
from pydantic import BaseModel


class Quote(BaseModel):
    amount: float


@bm.step
async def check(order: str) -> str:
    return f"checked {order}"


@bm.step
async def price(order: str) -> Quote:
    return Quote(amount=len(order))


@bm.step
async def ship(order: str) -> str:
    return f"shipped {order}"


@bm.step
async def notify(order: str) -> str:
    return f"notified {order}"


@bm.workflow(name="order")
async def order(order_id: str) -> str:
    checked = await check(order_id)
    quote = await price(order_id)
    if order_id.startswith("wait"):
        await bm.wait_for("go")
    shipped = await ship(order_id)
    return f"{checked}; {quote.amount}; {shipped}"
"""

# Each change is (old text, new text) applied to V1.
REORDERED = ("    checked = await check(order_id)\n    quote = await price(order_id)\n",
             "    quote = await price(order_id)\n    checked = await check(order_id)\n")  # fmt: skip
RENAMED = ("async def ship(order: str)", "async def dispatch(order: str)")
RENAMED_CALL = ("shipped = await ship(order_id)", "shipped = await dispatch(order_id)")
RETYPED = ("async def price(order: str) -> Quote:\n    return Quote(amount=len(order))",
           "async def price(order: str) -> int:\n    return len(order)")  # fmt: skip
RETYPED_USE = ("{quote.amount}", "{quote}")
APPENDED = ('    return f"{checked}', '    await notify(order_id)\n    return f"{checked}')
INSERTED = (
    "    shipped = await ship(order_id)\n",
    "    await notify(order_id)\n    shipped = await ship(order_id)\n",
)
PATCHED = (
    "    shipped = await ship(order_id)\n",
    "    if bm.patched('notify-first'):\n        await notify(order_id)\n"
    "    shipped = await ship(order_id)\n",
)
REMOVED = ("    shipped = await ship(order_id)\n", "    shipped = 'not shipped'\n")


def write_variant(folder: Path, name: str, *changes: tuple[str, str]) -> Path:
    source = V1
    for old, new in changes:
        assert old in source, old
        source = source.replace(old, new)
    path = folder / f"{name}.py"
    path.write_text(source)
    return path


def load(path: Path) -> bm.Workflow[..., Any]:
    spec = importlib.util.spec_from_file_location(f"determinism_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    wf = module.order
    assert isinstance(wf, bm.Workflow)
    return wf


@pytest.fixture
async def journal(tmp_path: Path) -> tuple[Path, str, str]:
    """A journal with a finished run ("a1") and one waiting for signal "go" ("wait-1")."""
    v1 = load(write_variant(tmp_path, "v1"))
    db = tmp_path / "recorded.db"
    async with temp_engine([v1], db=db) as engine:
        done = await engine.start(v1, "a1")
        assert await done.result(timeout=30) == "checked a1; 2.0; shipped a1"
        waiting = await engine.start(v1, "wait-1")
        for _ in range(200):
            if (await engine.describe(waiting.id)).status == "waiting":
                break
            await bm.sleep(0.05)
        assert (await engine.describe(waiting.id)).status == "waiting"
    return db, done.id, waiting.id


def rows(db: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT * FROM steps ORDER BY run_id, seq").fetchall()


async def check(db: Path, path: Path) -> dict[str, tuple[int, str, str, str]]:
    report = await check_determinism([load(path)], db=db)
    assert report.checked == 2
    return {d.run_id: (d.seq, d.recorded, d.now, d.reason) for d in report.divergent}


async def test_unchanged_and_appended_code_resumes_every_run(
    journal: tuple[Path, str, str], tmp_path: Path
) -> None:
    db, _, _ = journal
    before = rows(db)
    assert await check(db, write_variant(tmp_path, "same")) == {}
    assert await check(db, write_variant(tmp_path, "appended", APPENDED)) == {}
    assert rows(db) == before  # the check only reads the journal


async def test_a_reordered_step_is_caught_in_every_run(
    journal: tuple[Path, str, str], tmp_path: Path
) -> None:
    db, done, waiting = journal
    found = await check(db, write_variant(tmp_path, "reordered", REORDERED))
    assert found == {
        done: (1, "step check", "step price", "changed"),
        waiting: (1, "step check", "step price", "changed"),
    }


async def test_a_renamed_step_is_caught_where_the_run_recorded_it(
    journal: tuple[Path, str, str], tmp_path: Path
) -> None:
    db, done, _ = journal
    found = await check(db, write_variant(tmp_path, "renamed", RENAMED, RENAMED_CALL))
    # The waiting run has not reached `ship` yet: it will call the new name, which is fine.
    assert found == {done: (3, "step ship", "step dispatch", "changed")}


async def test_a_changed_return_type_is_caught(journal: tuple[Path, str, str], tmp_path: Path) -> None:
    db, done, waiting = journal
    found = await check(db, write_variant(tmp_path, "retyped", RETYPED, RETYPED_USE))
    assert found == {
        done: (2, "step price", "step price", "type"),
        waiting: (2, "step price", "step price", "type"),
    }


async def test_a_removed_step_is_caught(journal: tuple[Path, str, str], tmp_path: Path) -> None:
    db, done, _ = journal
    found = await check(db, write_variant(tmp_path, "removed", REMOVED))
    assert found == {done: (3, "step ship", "", "removed")}


async def test_an_inserted_step_is_caught_unless_it_is_patched(
    journal: tuple[Path, str, str], tmp_path: Path
) -> None:
    db, done, _ = journal
    found = await check(db, write_variant(tmp_path, "inserted", INSERTED))
    assert found == {done: (3, "step ship", "step notify", "changed")}
    # Under bm.patched, the finished run keeps its old branch: nothing to report.
    assert await check(db, write_variant(tmp_path, "patched", PATCHED)) == {}


async def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(bm.ReplayError, match="no journal at"):
        await check_determinism([load(write_variant(tmp_path, "v1"))], db=tmp_path / "missing.db")
    with pytest.raises(bm.ReplayError, match="no workflows to check"):
        await check_determinism([], db=tmp_path / "missing.db")


def bandmaster(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "bandmaster"
    env = {k: v for k, v in os.environ.items() if k != "BANDMASTER_DB"}
    env.update(COLUMNS="200", NO_COLOR="1")
    return subprocess.run(
        [str(exe), *map(str, args)], capture_output=True, text=True, timeout=60, cwd=cwd, env=env
    )


async def test_cli_exits_1_listing_each_divergent_run(journal: tuple[Path, str, str], tmp_path: Path) -> None:
    db, done, waiting = journal
    module = write_variant(tmp_path, "reordered", REORDERED)
    result = bandmaster("replay", module, "--db", db, "--determinism", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "checked 2 recorded runs of order: 2 would not resume" in result.stdout
    for run_id in (done, waiting):
        line = next(line for line in result.stdout.splitlines() if run_id in line)
        assert line.count("step check") == line.count("step price") == line.count("changed") == 1
    assert "new workflow version" in result.stderr

    as_json = bandmaster("replay", module, "--db", db, "--determinism", "--json", cwd=tmp_path)
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False
    assert report["checked"] == 2
    assert {(d["run_id"], d["seq"], d["reason"]) for d in report["divergent"]} == {
        (done, 1, "changed"),
        (waiting, 1, "changed"),
    }


async def test_cli_exits_0_when_every_run_would_resume(
    journal: tuple[Path, str, str], tmp_path: Path
) -> None:
    db, _, _ = journal
    module = write_variant(tmp_path, "appended", APPENDED)
    result = bandmaster("replay", f"{module}:order", "--db", db, "--determinism", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "checked 2 recorded runs of order: 0 would not resume" in result.stdout
    only_done = bandmaster(
        "replay", module, "--db", db, "--determinism", "--runs", "status=completed", cwd=tmp_path
    )
    assert "checked 1 recorded runs of order" in only_done.stdout
    missing = bandmaster("replay", module, "--db", tmp_path / "nope.db", "--determinism", cwd=tmp_path)
    assert missing.returncode == 2
    assert "no journal at" in missing.stderr
