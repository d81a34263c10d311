"""A workflow ticked every second by whichever workers load this module; each execution of
its step appends the run id to $BM_E2E_LOG (one O_APPEND write, so lines of concurrent
processes never interleave), so a test sees a tick that executed twice."""

from __future__ import annotations

import os

import bandmaster as bm


def append_run_id() -> str:
    step = bm.current_step()
    assert step is not None, "append_run_id() runs inside a step"
    fd = os.open(os.environ["BM_E2E_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{step.run_id}\n".encode())
    finally:
        os.close(fd)
    return step.run_id


@bm.step
async def record() -> str:
    return append_run_id()


@bm.schedule("* * * * * *", name="every-second", catchup="all")
@bm.workflow
async def heartbeat() -> str:
    return await record()
