"""``TemporalEngine.models`` and shared breakers, against a real Temporal dev server: switches
validated like the embedded engine's, adopted by running worker processes within a second and
kept across worker restarts; one breaker state per model across two worker processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

pytest.importorskip("temporalio", reason="the Temporal backend needs: pip install 'bandmaster[temporal]'")
import models_app
from temporal_support import TemporalServer

import bandmaster as bm

pytestmark = pytest.mark.timeout(180)

APP = Path(models_app.__file__).resolve()


@pytest.fixture
def models_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(models_app.MODELS_YAML)
    monkeypatch.setenv("BM_MODELS_LOG", str(tmp_path / "served.log"))
    return path


def served(tmp_path: Path) -> list[tuple[str, int]]:
    log = tmp_path / "served.log"
    lines = log.read_text().split() if log.exists() else []
    return [(name, int(pid)) for name, pid in zip(lines[::2], lines[1::2], strict=True)]


# --- the desk, with an in-process worker ---------------------------------------------------------


@pytest.fixture
async def engine(temporal_server: TemporalServer, models_yaml: Path) -> AsyncIterator[bm.TemporalEngine]:
    async with bm.TemporalEngine(
        temporal_server.target,
        task_queue=f"models-{uuid.uuid4().hex[:8]}",
        workflows=[models_app.colour_once],
        registry=bm.Registry.load(models_yaml),
    ) as opened:
        yield opened


async def test_switch_is_validated_applied_and_kept_in_history(engine: bm.TemporalEngine) -> None:
    before = {a.alias: a for a in await engine.models.describe()}
    assert before["colour"].versions == {"production": "blue", "canary": "green"}
    assert before["flaky"].fallback == ["spare"]
    assert before["flaky"].breakers == {"down": "closed", "spare": "closed"}

    with pytest.raises(bm.UnknownModel, match="unknown model 'purple'"):
        await engine.models.switch("colour", versions={"production": "purple"}, by="ops")
    with pytest.raises(bm.UnknownModel, match="no alias 'nope'"):
        await engine.models.switch("nope", weights={"production": 1.0}, by="ops")
    with pytest.raises(bm.RegistryError, match="must sum to 1"):
        await engine.models.switch("colour", weights={"production": 0.5, "canary": 0.2}, by="ops")
    assert await engine.models.history("colour") == []
    with pytest.raises(bm.UnknownModel, match="no alias 'nope'"):
        await engine.models.history("nope")

    state = await engine.models.switch("colour", weights={"production": 0.0, "canary": 1.0}, by="alice")
    assert (state.alias, state.weights) == ("colour", {"production": 0.0, "canary": 1.0})
    await engine.models.switch("colour", versions={"production": "green"}, by="bob")
    after = {a.alias: a for a in await engine.models.describe()}
    assert after["colour"].versions == {"production": "green"}
    history = await engine.models.history("colour")
    assert [h["changed_by"] for h in history] == ["bob", "alice"]  # newest first
    assert history[0]["spec"]["versions"] == {"production": "green"}

    answer = await (await engine.start(models_app.colour_once)).result(timeout=30)
    assert answer.startswith("green ")
    assert [r.workflow for r in await engine.list()] == ["colour_once"]  # the registry is not a run


# --- worker processes ----------------------------------------------------------------------------


class Workers:
    """``bandmaster worker --backend temporal models_app.py --models ...`` processes."""

    def __init__(self, folder: Path, target: str, models: Path) -> None:
        self.folder, self.target, self.models = folder, target, models
        self.task_queue = f"mp-{uuid.uuid4().hex[:8]}"
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *extra: str) -> subprocess.Popen[bytes]:
        log = self.folder / f"worker-{len(self.procs)}.log"
        env = {**os.environ, "BANDMASTER_BACKEND": "temporal", "BANDMASTER_TEMPORAL_TARGET": self.target}
        exe = str(Path(sys.executable).parent / "bandmaster")
        command = [exe, "worker", str(APP), "--task-queue", self.task_queue, "--models", str(self.models)]
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [*command, *extra], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env
            )
        self.procs.append(proc)
        return proc

    async def serving(self, proc: subprocess.Popen[bytes]) -> None:
        log = self.folder / f"worker-{self.procs.index(proc)}.log"
        for _ in range(600):
            assert proc.poll() is None, log.read_text()
            if "serving" in log.read_text():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(log.read_text())

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def workers(tmp_path: Path, temporal_server: TemporalServer, models_yaml: Path) -> Iterator[Workers]:
    procs = Workers(tmp_path, temporal_server.target, models_yaml)
    try:
        yield procs
    finally:
        procs.cleanup()


async def test_a_switch_reaches_a_running_worker_within_a_second_and_survives_its_restart(
    workers: Workers, temporal_server: TemporalServer
) -> None:
    first = workers.start()
    await workers.serving(first)
    async with bm.TemporalEngine(
        temporal_server.target, task_queue=workers.task_queue, worker=False
    ) as client:
        handle = await client.start("colours", 4.0, 0.0)
        await asyncio.sleep(1.5)  # the worker answers blue meanwhile
        asked = time.time()
        await client.models.switch("colour", weights={"production": 0.0, "canary": 1.0}, by="ops")
        switched = time.time()
        answers = [a.split() for a in await handle.result(timeout=60)]
        calls = [(name, float(at)) for name, at, _ in answers]
        assert calls[0][0] == "blue"
        assert all(name == "blue" for name, at in calls if at < asked)
        first_green = min(at for name, at in calls if name == "green")
        assert all(name == "green" for name, at in calls if at > first_green)  # no flapping back
        latency = first_green - switched
        print(f"\nswitch adopted by the running worker {latency * 1000:.0f} ms after switch() returned")
        assert latency < 1.0
        assert sum(at > switched + 1.0 for _, at in calls) > 5  # the run went on asking after that

        os.kill(first.pid, signal.SIGKILL)  # a new worker process reads the switch before it serves
        first.wait(timeout=10)
        await workers.serving(workers.start())
        answer = await (await client.start("colour_once")).result(timeout=60)
        assert answer.split()[0] == "green"
        assert [h["changed_by"] for h in await client.models.history("colour")] == ["ops"]


async def test_failures_seen_by_two_workers_open_the_breaker_for_both(
    workers: Workers, temporal_server: TemporalServer, tmp_path: Path
) -> None:
    """The breaker opens after 4 failures; each worker sees 2. With one activity slot per
    worker and calls that hold it for a while, two calls at once go to different workers."""
    procs = [workers.start("--concurrency", "1") for _ in range(2)]
    for proc in procs:
        await workers.serving(proc)
    async with bm.TemporalEngine(
        temporal_server.target, task_queue=workers.task_queue, worker=False
    ) as client:

        async def wave() -> list[str]:
            handles = [await client.start("flaky_once") for _ in range(2)]
            return [await h.result(timeout=60) for h in handles]

        for _ in range(2):
            assert [a.split()[0] for a in await wave()] == ["spare", "spare"]
        downs = Counter(pid for name, pid in served(tmp_path) if name == "down")
        assert sorted(downs.values()) == [2, 2]  # two workers, two failures each: none opened alone
        assert set(downs) == {p.pid for p in procs}

        for _ in range(200):
            flaky = next(a for a in await client.models.describe() if a.alias == "flaky")
            if flaky.breakers["down"] == "open":
                break
            await asyncio.sleep(0.05)
        assert flaky.breakers == {"down": "open", "spare": "closed"}

        before = len(served(tmp_path))
        handles = [await client.start("flaky_once") for _ in range(2)]
        for handle in handles:
            assert (await handle.result(timeout=60)).split()[0] == "spare"
            [step] = (await client.describe(handle.id)).steps
            assert step.meta["breakers"] == {"down": "open", "spare": "closed"}  # skipped, not called
        later = served(tmp_path)[before:]
        assert [name for name, _ in later] == ["spare", "spare"]  # the primary was not called again
        assert {pid for _, pid in later} == {p.pid for p in procs}  # by either worker


async def test_the_registry_continues_as_new_with_its_state(
    temporal_server: TemporalServer, models_yaml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bandmaster.temporal import _model_registry as model_registry
    from bandmaster.temporal import _singletons as singletons

    monkeypatch.setattr(singletons, "MAX_EVENTS", 40)  # instead of Temporal's suggestion
    async with bm.TemporalEngine(
        temporal_server.target,
        task_queue=f"models-{uuid.uuid4().hex[:8]}",
        workflows=[models_app.colour_once],
        registry=bm.Registry.load(models_yaml),
    ) as engine:
        handle = engine.client.get_workflow_handle(model_registry.registry_id(engine.task_queue))
        first = (await handle.describe()).run_id
        shares = [0.1 * i for i in range(1, 10)]
        for share in shares:
            await engine.models.switch(
                "colour", weights={"production": 1 - share, "canary": share}, by=f"{share:.1f}"
            )
        assert (await handle.describe()).run_id != first  # continued as new, at least once
        history = await engine.models.history("colour")
        assert [h["changed_by"] for h in history] == [f"{s:.1f}" for s in reversed(shares)]
        colour = next(a for a in await engine.models.describe() if a.alias == "colour")
        assert colour.weights["canary"] == pytest.approx(0.9)


async def test_concurrent_switches_are_all_applied_one_after_another(engine: bm.TemporalEngine) -> None:
    """Each is computed from the alias as the one before left it (a preview made against an
    older revision is made again), so none is lost."""
    people = ["ann", "ben", "cat"]
    await asyncio.gather(
        *(engine.models.switch("colour", weights={"production": 0.5, "canary": 0.5}, by=p) for p in people)
    )
    history = await engine.models.history("colour")
    assert sorted(h["changed_by"] for h in history) == people
