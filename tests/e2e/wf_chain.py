"""Workflows executed by the ``bandmaster worker`` subprocesses of the e2e tests.

Loaded by the worker as a file path (``bandmaster worker tests/e2e/wf_chain.py``) and by the
test process through the same loader, so both sides agree on names and signatures.

Every step appends one line ``run_id:seq:pid:name`` to the side-effect log named by
``$BM_E2E_LOG`` (one ``write`` on an ``O_APPEND`` descriptor, so lines from concurrent
processes never interleave) *before* it returns: a crash between the side effect and the
journal write shows up as a second line for that ``run_id:seq``.
"""

from __future__ import annotations

import asyncio
import os

import bandmaster as bm

LOG_ENV = "BM_E2E_LOG"


def record_side_effect(name: str) -> None:
    step = bm.current_step()
    assert step is not None, "record_side_effect() runs inside a step"
    line = f"{step.run_id}:{step.seq}:{os.getpid()}:{name}\n".encode()
    fd = os.open(os.environ[LOG_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


@bm.step
async def effect(i: int, delay: float) -> int:
    record_side_effect("effect")
    await asyncio.sleep(delay)
    return i * i


@bm.workflow
async def chain(tag: str, steps: int = 20, delay: float = 0.04) -> dict[str, object]:
    """``steps`` sequential steps; step i is journaled at seq i and returns i*i."""
    total = 0
    for i in range(1, steps + 1):
        total += await effect(i, delay)
    return {"tag": tag, "total": total}


def chain_total(steps: int) -> int:
    return sum(i * i for i in range(1, steps + 1))


@bm.step
async def mark(label: str) -> str:
    record_side_effect(label)
    return label


@bm.workflow
async def napper(seconds: float) -> list[str]:
    """step, durable sleep, step: seqs 1 (before), 2 (sleep), 3 (after)."""
    first = await mark("before")
    await bm.sleep(seconds)
    second = await mark("after")
    return [first, second]


@bm.step
async def slow_mark(label: str, delay: float) -> str:
    record_side_effect(label)
    await asyncio.sleep(delay)
    return label


@bm.workflow
async def approval(ticket: str, delay: float = 0.0) -> dict[str, object]:
    """step (taking ``delay`` seconds), wait for the ``approve`` signal, step."""
    await slow_mark("requested", delay)
    decision = await bm.wait_for("approve")
    await mark("decided")
    return {"ticket": ticket, "decision": decision}


@bm.workflow
async def deadline(ticket: str, timeout: float) -> dict[str, object]:
    """Wait for ``approve`` at most ``timeout`` seconds, then go on with a default."""
    await mark("asked")
    decision = await bm.wait_for("approve", timeout=timeout, default={"ok": False, "default": True})
    await mark("went-on")
    return {"ticket": ticket, "decision": decision}


@bm.workflow
async def two_gates(ticket: str) -> dict[str, object]:
    """Wait for ``first``, then for ``second``: a ``second`` sent early is kept for later."""
    first = await bm.wait_for("first")
    await mark("between")
    second = await bm.wait_for("second")
    return {"ticket": ticket, "first": first, "second": second}


@bm.workflow
async def nap_then_gate(ticket: str, seconds: float) -> dict[str, object]:
    """A durable sleep, then a signal wait: the signal may come while the run sleeps."""
    await mark("before")
    await bm.sleep(seconds)
    decision = await bm.wait_for("approve")
    return {"ticket": ticket, "decision": decision}
