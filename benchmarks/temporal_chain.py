"""The 10-step chain of bench_temporal.py, written twice: with bandmaster and directly with the
temporalio SDK. Worker processes of the throughput benchmark import this file too."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

import bandmaster as bm

STEPS = 10


# --- bandmaster ------------------------------------------------------------------------------


@bm.step(timeout=10)
async def noop(i: int) -> int:
    return i + 1


@bm.step(timeout=10, local=True)
async def noop_local(i: int) -> int:
    return i + 1


@bm.workflow
async def chain(n: int) -> int:
    value = 0
    for _ in range(n):
        value = await noop(value)
    return value


@bm.workflow
async def chain_local(n: int) -> int:
    value = 0
    for _ in range(n):
        value = await noop_local(value)
    return value


# --- the same with the raw SDK ----------------------------------------------------------------


@activity.defn(name="raw_noop")
async def raw_noop(i: int) -> int:
    return i + 1


@workflow.defn(name="raw_chain")
class RawChain:
    @workflow.run
    async def run(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = await workflow.execute_activity(
                raw_noop, value, start_to_close_timeout=timedelta(seconds=10)
            )
        return value


@workflow.defn(name="raw_chain_local")
class RawChainLocal:
    @workflow.run
    async def run(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = await workflow.execute_local_activity(
                raw_noop, value, start_to_close_timeout=timedelta(seconds=10)
            )
        return value
