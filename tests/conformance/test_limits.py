"""Models' rate and concurrency limits (``models.<name>.limits``), held across worker processes
on both backends, against the scripted server enforcing the same limits as a provider would
(answering 429). Real worker processes, real HTTP, a real Temporal dev server."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conformance_support import BACKENDS, skip_without_temporal
from tests.models.helpers import ScriptedServer, bandmaster_exe, scripted_server_process, subprocess_env

import bandmaster as bm
from bandmaster.calls.wrappers import LimitGate, LocalLimitLedger
from bandmaster.engine import RunTerms, terms_scope
from bandmaster.errors import RegistryError
from bandmaster.policies import RateLimits
from bandmaster.store import LimitStore, SQLiteStore

pytestmark = [pytest.mark.timeout(420)]

HERE = Path(__file__).resolve().parent
WF_LIMITS = HERE / "wf_limits.py"
PROVIDER_MODEL = "limited-model"  # the scripted server's model behind the registry's `limited`
READY_TIMEOUT = 60.0


# --- the scripted provider and the worker processes ------------------------------------------


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScriptedServer]:
    pytest.importorskip("openai", reason="needs bandmaster[openai] (the scripted server's client)")
    with scripted_server_process(tmp_path_factory.mktemp("limits-server") / "server.err") as server:
        yield server


BURST = 4
"""Requests over the rate the server lets through in any second: network and scheduling jitter,
and each worker's first request, which the SDK holds back ~0.5 s while it builds its client
(sent late, it lands next to an on-time one). A bursty client, or workers that do not share
the limit, exceed it at once."""


def enforce(server: ScriptedServer, **limits: Any) -> None:
    """The server answers ``PROVIDER_MODEL`` within ``limits`` and 429 beyond them."""
    server._request("/control", {"models": {PROVIDER_MODEL: {"limits": {"burst": BURST, **limits}}}})


def write_models(tmp_path: Path, server: ScriptedServer, limits: dict[str, Any]) -> Path:
    path = tmp_path / "models.yaml"
    entry = server.openai_entry(PROVIDER_MODEL, api_key_env="LIMITS_TEST_KEY", limits=limits)
    path.write_text(
        yaml.safe_dump(
            {
                "models": {PROVIDER_MODEL: entry},
                # Retries honour Retry-After; enough of them that a 429 storm fails no run.
                "aliases": {
                    "limited": {
                        "versions": {"production": PROVIDER_MODEL},
                        "policy": {"retry": {"attempts": 10, "max_delay": 3}},
                    }
                },
            }
        )
    )
    return path


class Workers:
    """``bandmaster worker`` processes serving ``wf_limits.py`` on one backend; all killed at
    teardown."""

    def __init__(self, folder: Path, backend: str, models: Path, server: ScriptedServer, target: str) -> None:
        self.folder, self.backend, self.models, self.target = folder, backend, models, target
        self.db = folder / "journal.db"
        self.task_queue = f"limits-{uuid.uuid4().hex[:8]}"
        self.warm_up = f"{server.url}/v1"
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, count: int) -> None:
        """Start ``count`` workers, each once the previous one serves (the first makes the
        journal: three at once on a new file race to create it)."""
        for _ in range(count):
            number = len(self.procs)
            if self.backend == "embedded":
                where = ["--db", str(self.db), "--poll", "0.02"]
            else:
                where = ["--backend", "temporal", "--target", self.target, "--task-queue", self.task_queue]
            env = subprocess_env(LIMITS_TEST_KEY="test", LIMITS_WARM_UP_URL=self.warm_up)
            env["PYTHONPATH"] = os.pathsep.join([str(HERE), env["PYTHONPATH"]])
            log = self.folder / f"worker-{number}.err"
            with open(log, "wb") as err:
                proc = subprocess.Popen(
                    [bandmaster_exe(), "worker", str(WF_LIMITS), "--models", str(self.models), *where],
                    cwd=self.folder,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                )
            self.procs.append(proc)
            deadline = time.monotonic() + READY_TIMEOUT
            while "serving" not in log.read_text():
                assert proc.poll() is None, f"worker exited: {log.read_text()}"
                assert time.monotonic() < deadline, f"worker not ready: {log.read_text()}"
                time.sleep(0.05)

    def client(self) -> Any:
        if self.backend == "embedded":
            return bm.Engine(self.db, worker=False)
        return bm.TemporalEngine(self.target, task_queue=self.task_queue, worker=False)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


@pytest.fixture
def workers_for(request: pytest.FixtureRequest, tmp_path: Path, provider: ScriptedServer) -> Iterator[Any]:
    made: list[Workers] = []

    def make(backend: str, limits: dict[str, Any]) -> Workers:
        skip_without_temporal(backend)
        target = request.getfixturevalue("temporal_dev_server").target if backend == "temporal" else ""
        workers = Workers(tmp_path, backend, write_models(tmp_path, provider, limits), provider, target)
        made.append(workers)
        return workers

    try:
        yield make
    finally:
        for workers in made:
            workers.stop()


async def run_calls(workers: Workers, count: int) -> None:
    async with workers.client() as client:
        handles = []
        for first in range(0, count, 50):  # started 50 at a time: a Temporal start is a round trip
            batch = range(first, min(count, first + 50))
            handles += await asyncio.gather(*(client.start("limited_call", number) for number in batch))
        results = await asyncio.gather(*(h.result(timeout=300) for h in handles))
    assert results == [f"echo: call {number}" for number in range(count)]


def provider_log(server: ScriptedServer) -> list[dict[str, Any]]:
    return [entry for entry in server.stats()["log"] if entry["model"] == PROVIDER_MODEL]


def throughput(times: list[float]) -> float:
    """Requests per second between the first and the last arrival."""
    return (len(times) - 1) / (times[-1] - times[0])


def saturated_throughput(times: list[float]) -> float:
    """Requests per second from the 10th to the 90th percentile arrival: while every worker
    had calls waiting (the first calls wait for runs to be started and claimed, the last for
    the slowest runs to finish: not the limiter's doing)."""
    return throughput(times[len(times) // 10 : len(times) * 9 // 10])


# --- three workers, one limit ------------------------------------------------------------------

RATE = {"embedded": 20.0, "temporal": 2.0}
"""Requests per second of the limit: what three workers of each backend sustain with room to
spare on a small shared test machine (a Temporal run costs several server round trips)."""
CONCURRENCY = 8


@pytest.mark.parametrize("backend", BACKENDS)
async def test_three_workers_share_the_limit_without_a_429(
    backend: str, workers_for: Any, provider: ScriptedServer
) -> None:
    provider.reset()
    rate = RATE[backend]
    limits = {"rpm": rate * 60, "concurrency": CONCURRENCY}
    workers: Workers = workers_for(backend, limits)
    workers.start(3)
    enforce(provider, **limits, delay=0.05)

    await run_calls(workers, 300)

    log = provider_log(provider)
    refused = [entry for entry in log if entry["limited"]]
    assert refused == [], f"{len(refused)} requests over the limit got a 429"
    times = [entry["t"] for entry in log]
    assert len(times) == 300
    achieved = saturated_throughput(times)
    assert achieved >= 0.9 * rate, f"{achieved:.1f}/s of a {rate:g}/s limit"


# --- a 429 storm slows every worker -------------------------------------------------------------

PROPAGATION = {"embedded": 0.3, "temporal": 0.6}
"""Seconds a 429 seen by one worker may take to stop the others: a worker sends within 0.1 s
of its last round trip to the shared state, plus that round trip and the report's (a batched
journal write; on Temporal two Updates, slow on a loaded dev server), plus requests in flight."""


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_429_storm_slows_every_worker_until_retry_after(
    backend: str, workers_for: Any, provider: ScriptedServer
) -> None:
    provider.reset()
    rate = RATE[backend]
    workers: Workers = workers_for(backend, {"rpm": rate * 60})
    workers.start(3)
    # The provider's real limit is a quarter of what models.yaml says: a storm of 429s.
    enforce(provider, rpm=rate / 4 * 60, burst=0, retry_after=1)
    calls = asyncio.create_task(run_calls(workers, int(10 * rate)))
    deadline = time.monotonic() + 60
    while sum(entry["limited"] for entry in provider_log(provider)) < 2:
        assert not calls.done(), calls
        assert time.monotonic() < deadline, "no 429 came"
        await asyncio.sleep(0.1)
    await asyncio.sleep(2)
    enforce(provider, rpm=rate * 60, retry_after=1)  # the provider is back to the full limit
    storm_end = time.time()
    await calls

    log = provider_log(provider)
    for entry in log:
        if entry["limited"]:  # nobody sent while the provider said to wait
            since = entry["t"] + PROPAGATION[backend]
            early = [e["t"] - entry["t"] for e in log if since <= e["t"] < entry["t"] + 1]
            assert early == [], f"requests {early} s after a 429 with Retry-After: 1"
    after = [entry["t"] for entry in log if entry["t"] > storm_end]
    assert not any(entry["limited"] for entry in log if entry["t"] > storm_end + 1)
    tail = after[-int(2 * rate) :]  # the last two seconds' worth of requests
    assert len(after) > len(tail) > 2
    assert throughput(tail) >= 0.75 * rate, "the rate did not recover after the storm"


# --- priority, aging and tenants among the waiters of one process --------------------------------


async def test_waiters_are_served_by_priority_then_tenant_in_turn() -> None:
    gate = LimitGate("m", RateLimits(rpm=6000), LocalLimitLedger())  # a permit every 10 ms
    order: list[str] = []

    async def call(label: str, priority: int, tenant: str | None = None) -> None:
        with terms_scope(RunTerms(priority=priority, tenant=tenant)):
            await gate.acquire(0)
        order.append(label)

    await gate.acquire(0)  # the next permit is 10 ms away: everyone below waits
    calls = [call(f"low{n}", 0) for n in range(3)] + [call(f"high{n}", 10) for n in range(3)]
    await asyncio.gather(*calls)
    assert order == ["high0", "high1", "high2", "low0", "low1", "low2"]

    order.clear()
    calls = [call(f"a{n}", 5, "acme") for n in range(4)] + [call(f"b{n}", 5, "bolt") for n in range(2)]
    await asyncio.gather(*calls)
    assert order == ["a0", "b0", "a1", "b1", "a2", "a3"]


async def test_aging_lets_a_low_priority_waiter_through_a_stream_of_high_ones() -> None:
    # 100 priority points per second waited: after ~0.1 s the low waiter outranks a fresh high
    gate = LimitGate("m", RateLimits(rpm=6000), LocalLimitLedger(), aging=100.0)
    order: list[str] = []

    async def call(label: str, priority: int) -> None:
        with terms_scope(RunTerms(priority=priority)):
            await gate.acquire(0)
        order.append(label)

    async def stream_of_highs() -> None:  # always a fresh high-priority waiter queued
        pending: set[asyncio.Task[None]] = set()
        for n in range(60):
            pending.add(asyncio.create_task(call(f"high{n}", 10)))
            await asyncio.sleep(0.005)
        await asyncio.gather(*pending)

    await gate.acquire(0)
    low = asyncio.create_task(call("low", 0))
    await stream_of_highs()
    await low
    position = order.index("low")
    assert 0 < position < 55, order  # not first (priority counts), not last (aging counts)


async def test_permits_closer_than_a_driver_pass_are_served_without_a_pause_each() -> None:
    """At a rate faster than the waiters' driver runs, a waiter must not sit through the stale
    permits one pause at a time: that stalled each call for up to a block of them (a second
    and more at a very high rpm)."""
    readings = itertools.count()
    clock = lambda: 1_000.0 + next(readings) * 2e-5  # noqa: E731 (each reading 20 µs later)
    ledger = LocalLimitLedger(clock)
    gate = LimitGate("m", RateLimits(rpm=60_000_000), ledger, clock=clock)  # a permit every µs
    pauses = 0
    pause = gate._pause

    async def counted(seconds: float) -> None:
        nonlocal pauses
        pauses += 1
        await pause(seconds)

    gate._pause = counted  # type: ignore[method-assign]
    waiters = [asyncio.create_task(gate.acquire(0)) for _ in range(50)]  # through the driver
    await asyncio.gather(*waiters)
    assert pauses <= 5, f"{pauses} pauses to serve 50 waiters"


async def test_a_cancelled_waiter_leaves_its_place_and_takes_no_permit() -> None:
    gate = LimitGate("m", RateLimits(concurrency=1), LocalLimitLedger())
    await gate.acquire(0)  # the only slot
    waiting = asyncio.create_task(gate.acquire(0))
    await asyncio.sleep(0.05)
    waiting.cancel()  # a step's timeout
    with pytest.raises(asyncio.CancelledError):
        await waiting
    gate.release(0, None)
    await asyncio.wait_for(gate.acquire(0), 5)  # the slot came back, not to the cancelled waiter


# --- a killed worker's slots come back ------------------------------------------------------------

HOLDER = """
import asyncio, sys
from bandmaster.store import LimitStore, SQLiteStore
from bandmaster.policies import RateLimits

async def main():
    ledger = LimitStore(SQLiteStore(sys.argv[1]), lease=float(sys.argv[2]))
    grant = await ledger.take("m", RateLimits(concurrency=3), requests=0, tokens=0, slots=3, correction=0)
    print("held", grant.slots, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def start_holder(db: Path, lease: float) -> subprocess.Popen[bytes]:
    """A worker process holding all three slots of model ``m`` (and renewing their lease)."""
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db), str(lease)], stdout=subprocess.PIPE, env=subprocess_env()
    )


async def test_a_sigkilled_workers_concurrency_slots_are_reclaimed(tmp_path: Path) -> None:
    db, lease = tmp_path / "journal.db", 1.0
    limits = RateLimits(concurrency=3)
    proc = start_holder(db, lease)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"held 3"
        here = LimitStore(SQLiteStore(db), lease=lease)

        async def take_one() -> int:
            grant = await here.take("m", limits, requests=0, tokens=0, slots=1, correction=0)
            return grant.slots

        assert await take_one() == 0
        await asyncio.sleep(3 * lease)  # the live holder renews its lease: still all held
        assert await take_one() == 0
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10 * lease
        while (granted := await take_one()) == 0:
            assert time.monotonic() < deadline, "the killed worker's slots never came back"
            await asyncio.sleep(lease / 4)
        assert granted == 1
        assert here.slots_in_use("m") == 1  # only ours: the dead worker's three are gone
        here.store.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


# --- bad limits in models.yaml -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"rpm": 600, "burst": 10}, "models.m.limits.burst: is not a limit; use rpm (requests per minute)"),
        ({"rpm": -5}, "models.m.limits.rpm: Input should be greater than 0"),
        ({"concurrency": 2.5}, "models.m.limits.concurrency: Input should be a valid integer"),
        ({}, "models.m.limits: set at least one of rpm, tpm, concurrency (or remove limits:)"),
        ("600", "models.m.limits: Input should be a valid dictionary"),
    ],
)
def test_bad_limits_name_the_file_the_key_and_the_fix(tmp_path: Path, limits: Any, message: str) -> None:
    path = tmp_path / "models.yaml"
    entry = {"provider": "callable", "function": "x:y", "limits": limits}
    path.write_text(yaml.safe_dump({"models": {"m": entry}}))
    with pytest.raises(RegistryError) as caught:
        bm.Registry.load(path)
    assert f"{path}: {message}" in str(caught.value)


def test_limits_are_read_per_model() -> None:
    registry = bm.Registry.from_dict(
        {
            "models": {
                "a": {"provider": "callable", "function": "x:y", "limits": {"rpm": 600, "concurrency": 4}},
                "b": {"provider": "callable", "function": "x:y"},
            }
        }
    )
    spec = registry.limits("a")
    assert spec is not None
    assert spec.policy() == RateLimits(rpm=600, concurrency=4)
    assert registry.limits("b") is None
    assert registry.limits("not-a-model") is None
