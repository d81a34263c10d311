"""Two versions of the ``order`` workflow for the patch crash test, served by ``bandmaster
worker tests/e2e/wf_patches.py:v1`` (before the change) or ``...:v2`` (after it). Steps log
their side effects like wf_chain's (``$BM_E2E_LOG``)."""

from __future__ import annotations

import time
from pathlib import Path

from wf_chain import record_side_effect  # type: ignore[import-not-found]

import bandmaster as bm


@bm.step
async def first(order: str) -> str:
    record_side_effect("first")
    return f"first {order}"


@bm.step
def extra(order: str, gate: str) -> str:
    """The patched-in step: it holds until ``gate`` exists, so a test can kill its worker in it
    (a sync step: it runs in a thread, where polling a file blocks nothing)."""
    record_side_effect("extra-started")
    while not Path(gate).exists():
        time.sleep(0.02)
    record_side_effect("extra")
    return f"extra {order}"


@bm.step
async def last(order: str) -> str:
    record_side_effect("last")
    return f"last {order}"


@bm.workflow(name="order")
async def v1(order: str, gate: str) -> list[str]:
    done = [await first(order)]
    await bm.wait_for("go")
    done.append(await last(order))
    return done


@bm.workflow(name="order")
async def v2(order: str, gate: str) -> list[str]:
    done = [await first(order)]
    if bm.patched("extra-check"):
        done.append(await extra(order, gate))
    await bm.wait_for("go")
    done.append(await last(order))
    return done
