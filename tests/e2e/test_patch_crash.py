"""Patch branches across SIGKILLs: a run started under the old code and a run killed inside
the patched-in step both resume on a new worker with the branch they took, every operation
journaled once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import bandmaster as bm

from .harness import E2E_DIR, Journal, Workers, read_effects, wait_until

pytestmark = pytest.mark.e2e

MODULE = E2E_DIR / "wf_patches.py"


def steps(journal: Journal, run_id: str) -> list[tuple[int, str, str]]:
    return [(s["seq"], s["kind"], s["name"]) for s in journal.steps(run_id)]


async def test_patch_branches_hold_across_sigkill(
    workers: Workers, journal: Journal, side_log: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    async with bm.Engine(workers.db, worker=False) as client:
        before = workers.start(modules=(Path(f"{MODULE}:v1"),))
        old = (await client.start("order", "old", str(gate))).id
        await wait_until(
            lambda: journal.statuses().get(old) == "waiting",
            timeout=30,
            what="the old run waits",
            watch=(before,),
        )
        before.kill()

        during = workers.start(modules=(Path(f"{MODULE}:v2"),))
        new = (await client.start("order", "new", str(gate))).id
        await wait_until(
            lambda: any(e.run_id == new and e.name == "extra-started" for e in read_effects(side_log)),
            timeout=30,
            what="the new run is inside the patched-in step",
            watch=(during,),
        )
        assert (-1, "patch", "extra-check") in steps(journal, new)  # journaled before the branch ran
        during.kill()

        gate.touch()
        after = workers.start(modules=(Path(f"{MODULE}:v2"),))
        for run_id in (old, new):
            await client.signal(run_id, "go")
        await wait_until(
            lambda: journal.statuses().get(old) == journal.statuses().get(new) == "completed",
            timeout=60,
            what="both runs complete",
            watch=(after,),
        )

    assert json.loads(journal.run(old)["output"]) == ["first old", "last old"]
    assert steps(journal, old) == [(1, "step", "first"), (2, "wait", "go"), (3, "step", "last")]
    assert json.loads(journal.run(new)["output"]) == ["first new", "extra new", "last new"]
    assert steps(journal, new) == [
        (-1, "patch", "extra-check"),
        (1, "step", "first"),
        (2, "step", "extra"),
        (3, "wait", "go"),
        (4, "step", "last"),
    ]
    assert set(journal.row_counts().values()) == {1}
    effects = read_effects(side_log)
    assert [e.name for e in effects if e.run_id == old] == ["first", "last"]  # never the new branch
    assert [e.name for e in effects if e.run_id == new].count("extra") == 1
