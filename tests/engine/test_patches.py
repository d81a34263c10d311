"""``bm.patched`` / ``bm.deprecate_patch`` on the embedded engine: a run started under the old
code keeps the old branch when it resumes under the new code, new runs take the new branch and
journal a marker, and the markers never shift the numbering of operations."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

import bandmaster as bm

CALLS: list[str] = []


@bm.step
async def first(order: str) -> str:
    CALLS.append(f"first {order}")
    return f"first {order}"


@bm.step
async def extra(order: str) -> str:
    CALLS.append(f"extra {order}")
    return f"extra {order}"


@bm.step
async def last(order: str) -> str:
    CALLS.append(f"last {order}")
    return f"last {order}"


@bm.workflow(name="order")
async def v1(order: str) -> list[str]:
    done = [await first(order)]
    await bm.wait_for("go")
    done.append(await last(order))
    return done


@bm.workflow(name="order")
async def v2(order: str) -> list[str]:
    """The patch sits before the wait, inside the history of a run waiting there."""
    done = [await first(order)]
    if bm.patched("extra-check"):
        done.append(await extra(order))
    await bm.wait_for("go")
    done.append(await last(order))
    return done


@bm.workflow(name="order")
async def v3(order: str) -> list[str]:
    """Every run from before the patch has finished: only the new branch is left."""
    done = [await first(order)]
    bm.deprecate_patch("extra-check")  # where bm.patched was
    done.append(await extra(order))
    await bm.wait_for("go")
    done.append(await last(order))
    return done


@bm.workflow(name="order")
async def v2_after_wait(order: str) -> list[str]:
    """The patch sits after the wait: a waiting run reaches it as new code."""
    done = [await first(order)]
    await bm.wait_for("go")
    if bm.patched("extra-check"):
        done.append(await extra(order))
    done.append(await last(order))
    return done


@pytest.fixture(autouse=True)
def _forget_calls() -> None:
    CALLS.clear()


def journal(db: Path, run_id: str) -> list[tuple[int, str, str]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT seq, kind, name FROM steps WHERE run_id = ? ORDER BY seq", (run_id,))
        return [(seq, kind, name) for seq, kind, name in rows]


async def start_waiting(db: Path, wf: bm.Workflow[..., Any], order: str) -> str:
    async with bm.Engine(db, workflows=[wf]) as engine:
        handle = await engine.start(wf, order)
        for _ in range(400):
            if (await engine.describe(handle.id)).status == "waiting":
                return handle.id
            await bm.sleep(0.02)
    raise AssertionError(f"run {order} never reached its wait")


async def finish(db: Path, wf: bm.Workflow[..., Any], run_id: str) -> Any:
    async with bm.Engine(db, workflows=[wf]) as engine:
        await engine.signal(run_id, "go")
        return await engine.result(run_id, timeout=30)


async def test_an_old_run_keeps_the_old_branch_and_a_new_run_takes_the_new(tmp_path: Path) -> None:
    db = tmp_path / "bm.db"
    old = await start_waiting(db, v1, "old")
    new = await start_waiting(db, v2, "new")

    assert await finish(db, v2, old) == ["first old", "last old"]
    assert await finish(db, v2, new) == ["first new", "extra new", "last new"]
    assert "extra old" not in CALLS
    assert journal(db, old) == [(1, "step", "first"), (2, "wait", "go"), (3, "step", "last")]
    # The marker has a seq of its own below zero: the operations keep 1, 2, 3, 4.
    assert journal(db, new) == [
        (-1, "patch", "extra-check"),
        (1, "step", "first"),
        (2, "step", "extra"),
        (3, "wait", "go"),
        (4, "step", "last"),
    ]


async def test_a_deprecated_patch_resumes_runs_that_took_it(tmp_path: Path) -> None:
    db = tmp_path / "bm.db"
    patched_run = await start_waiting(db, v2, "p")
    assert await finish(db, v3, patched_run) == ["first p", "extra p", "last p"]
    assert CALLS.count("extra p") == 1  # answered from the journal on resume, not run again

    fresh = await start_waiting(db, v3, "fresh")
    assert await finish(db, v3, fresh) == ["first fresh", "extra fresh", "last fresh"]
    assert [kind for _, kind, _ in journal(db, fresh)] == ["step", "step", "wait", "step"]  # no marker


async def test_a_run_reaching_the_patch_as_new_code_takes_the_new_branch(tmp_path: Path) -> None:
    db = tmp_path / "bm.db"
    waiting = await start_waiting(db, v1, "w")
    assert await finish(db, v2_after_wait, waiting) == ["first w", "extra w", "last w"]
    assert (-1, "patch", "extra-check") in journal(db, waiting)


async def test_the_choice_is_asked_once_per_run(tmp_path: Path) -> None:
    answers: list[bool] = []

    @bm.workflow(name="twice")
    async def twice() -> list[bool]:
        answers.append(bm.patched("p"))
        answers.append(bm.patched("p"))
        return answers

    async with bm.Engine(tmp_path / "bm.db", workflows=[twice]) as engine:
        handle = await engine.start(twice)
        assert await handle.result(timeout=30) == [True, True]
        assert [(seq, kind) for seq, kind, _ in journal(tmp_path / "bm.db", handle.id)] == [(-1, "patch")]


async def test_outside_a_run_is_the_new_code_and_bad_ids_are_refused() -> None:
    assert bm.patched("anything") is True
    bm.deprecate_patch("anything")  # no error
    for bad in ("", "   ", "x" * 201):
        with pytest.raises(bm.UsageError, match="needs a patch id"):
            bm.patched(bad)
        with pytest.raises(bm.UsageError, match="needs a patch id"):
            bm.deprecate_patch(bad)


async def test_patched_inside_a_step_is_refused(tmp_path: Path) -> None:
    @bm.step(retry=bm.Retry(attempts=1))
    async def branching() -> bool:
        return bm.patched("inside")

    @bm.workflow(name="inside")
    async def inside() -> bool:
        return await branching()

    async with bm.Engine(tmp_path / "bm.db", workflows=[inside]) as engine:
        handle = await engine.start(inside)
        with pytest.raises(bm.RunFailed, match="cannot be called inside a step"):
            await handle.result(timeout=30)
