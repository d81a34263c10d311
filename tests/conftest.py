"""Shared fixtures: a journal file per test and an open embedded engine on it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

import bandmaster as bm
from bandmaster.calls import reset_models
from bandmaster.testing import FakeClock


@pytest.fixture(autouse=True)
def _fresh_model_state() -> Iterator[None]:
    """Each test starts without the default registry, hubs and breakers of the one before."""
    yield
    reset_models()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "journal.db"


@pytest.fixture
async def engine(db_path: Path) -> AsyncIterator[bm.Engine]:
    eng = bm.Engine(db_path, poll_interval=0.02, lease=2.0)
    await eng.open()
    try:
        yield eng
    finally:
        await eng.close(grace=1.0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def clocked_engine(db_path: Path, clock: FakeClock) -> AsyncIterator[bm.Engine]:
    """An engine on ``clock``: its timers fire only when the test moves the clock
    (``await clock.elapse(seconds)``)."""
    async with bm.Engine(db_path, clock=clock, poll_interval=0.02, lease=10.0) as eng:
        yield eng


StatusWaiter = Callable[..., Awaitable[bm.RunInfo]]


@pytest.fixture
def until_status() -> StatusWaiter:
    """``await until_status(engine, run_id, "waiting")``: poll ``describe`` until the run has
    one of the statuses (generous deadline: a slow machine is not a failure)."""

    async def wait(engine: bm.Engine, run_id: str, *statuses: str, timeout: float = 15.0) -> bm.RunInfo:
        deadline = time.monotonic() + timeout
        while True:
            info = await engine.describe(run_id)
            if info.status in statuses:
                return info
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} is {info.status}, expected one of {statuses}")
            await asyncio.sleep(0.01)

    return wait
