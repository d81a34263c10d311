"""``bm.patched`` / ``bm.deprecate_patch`` on the embedded engine, beyond what both backends
share (tests/temporal/test_patches_backends.py): one answer per run, and the refusals."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import bandmaster as bm


def journal(db: Path, run_id: str) -> list[tuple[int, str, str]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT seq, kind, name FROM steps WHERE run_id = ? ORDER BY seq", (run_id,))
        return [(seq, kind, name) for seq, kind, name in rows]


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
