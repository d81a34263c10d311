"""Registry state shared through the journal by separate processes: a circuit breaker opened
in this process is open in another, and ``bandmaster models set`` reaches a running
``bandmaster worker`` within a second or two, without a restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import bandmaster as bm

from .conftest import EngineFactory
from .helpers import HERE, ScriptedServer, bandmaster_exe, call_in_run, subprocess_env

SECOND_PROCESS = HERE / "second_process.py"
WF_MODELS = HERE / "wf_models.py"
READY_TIMEOUT = 20.0
SWITCH_BUDGET = 2.0


async def run_process(*args: str | Path, cwd: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *map(str, args),
        cwd=cwd,
        env=subprocess_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


# --- circuit breaker shared across processes ------------------------------------------------


def write_breaker_registry(tmp_path: Path, server: ScriptedServer) -> Path:
    import yaml

    path = tmp_path / "models.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "models": {
                    "primary": server.openai_entry("gpt-4o-mini"),
                    # OpenAI API for both: `import anthropic` alone takes seconds in a fresh process
                    "backup": server.openai_entry("gpt-4.1-nano"),
                },
                "aliases": {
                    "chat": {
                        "versions": {"production": "primary"},
                        "policy": {
                            "retry": {"attempts": 1},
                            "fallback": ["backup"],
                            "breaker": {"failures": 2, "window": 30, "reset": 60},
                        },
                    }
                },
            }
        )
    )
    return path


async def open_breaker_here(
    tmp_path: Path, server: ScriptedServer, engine_for: EngineFactory, db_path: Path
) -> Path:
    models = write_breaker_registry(tmp_path, server)
    server.script("gpt-4o-mini", default="500")
    engine = await engine_for(bm.Registry.load(models))
    for _ in range(2):
        _, step = await call_in_run(engine, "chat")
    assert step.meta["breakers"]["primary"] == "open"
    engine.store.flush()
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        rows = conn.execute("SELECT key, status FROM breakers").fetchall()
    assert rows == [("primary", "open")]
    assert server.count("gpt-4o-mini") == 2
    return models


async def test_breaker_opened_here_is_open_in_another_process(
    tmp_path: Path, server: ScriptedServer, engine_for: EngineFactory, db_path: Path
) -> None:
    models = await open_breaker_here(tmp_path, server, engine_for, db_path)
    server.script("gpt-4o-mini", default="ok")  # would answer now; the open breaker must keep calls off it

    code, out, err = await run_process(sys.executable, SECOND_PROCESS, models, db_path, "chat", cwd=tmp_path)
    assert code == 0, err
    report = json.loads(out)
    (view,) = report["describe"]
    assert view["alias"] == "chat"
    assert view["breakers"] == {"primary": "open", "backup": "closed"}
    assert report["text"] == "echo: from the second process"
    assert report["meta"]["served_by"] == "backup"
    assert report["meta"]["breakers"]["primary"] == "open"
    assert report["attempts"] == 1
    assert server.count("gpt-4o-mini") == 2, "the second process sent nothing to the open primary"


async def test_models_list_shows_the_shared_breaker_state(
    tmp_path: Path, server: ScriptedServer, engine_for: EngineFactory, db_path: Path
) -> None:
    models = await open_breaker_here(tmp_path, server, engine_for, db_path)
    code, out, err = await run_process(
        bandmaster_exe(), "models", "list", "--db", db_path, "--models", models, cwd=tmp_path
    )
    assert code == 0, err
    rows = [line.split("│") for line in out.splitlines() if "chat" in line]
    assert len(rows) == 1
    cells = [cell.strip() for cell in rows[0] if cell.strip()]
    assert cells == ["chat", "production", "primary", "100.00%", "open", "backup"]


async def test_models_list_json_shows_the_shared_breaker_state(
    tmp_path: Path, server: ScriptedServer, engine_for: EngineFactory, db_path: Path
) -> None:
    models = await open_breaker_here(tmp_path, server, engine_for, db_path)
    code, out, err = await run_process(
        bandmaster_exe(), "models", "list", "--json", "--db", db_path, "--models", models, cwd=tmp_path
    )
    assert code == 0, err
    (view,) = json.loads(out)
    assert view["breakers"] == {"primary": "open", "backup": "closed"}


# --- hot switch seen by a worker process --------------------------------------------------

HOT_SWITCH_YAML = """
models:
  model-a: {provider: callable, function: "tests.models.fixtures_models:model_a"}
  model-b: {provider: callable, function: "tests.models.fixtures_models:model_b"}
aliases:
  classification:
    versions: {production: model-a, canary: model-b}
    weights: {production: 1.0, canary: 0.0}
"""


@pytest.fixture
def worker(tmp_path: Path, db_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    """A ``bandmaster worker`` process serving ``wf_models.py`` with ``models.yaml``."""
    models = tmp_path / "models.yaml"
    models.write_text(HOT_SWITCH_YAML)
    err_path = tmp_path / "worker.err"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [
                bandmaster_exe(),
                "worker",
                str(WF_MODELS),
                "--db",
                str(db_path),
                "--models",
                str(models),
                "--poll",
                "0.02",
                "--lease",
                "5",
            ],
            cwd=tmp_path,
            env=subprocess_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while "serving" not in err_path.read_text():
            assert proc.poll() is None, f"worker exited: {err_path.read_text()}"
            assert time.monotonic() < deadline, f"worker not ready: {err_path.read_text()}"
            time.sleep(0.02)
        yield models, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=15)


async def classify(client: bm.Engine, text: str) -> tuple[dict[str, str], bm.StepInfo]:
    handle = await client.start("classify_ticket", text)
    result = await handle.result(timeout=15)
    info = await handle.describe()
    assert info.lease_owner is None or info.status == "completed"
    return result, info.steps[0]


async def test_hot_switch_reaches_a_running_worker(
    worker: tuple[Path, subprocess.Popen[bytes]], tmp_path: Path, db_path: Path
) -> None:
    models, proc = worker
    async with bm.Engine(db_path, worker=False) as client:
        for i in range(3):
            result, step = await classify(client, f"before {i}")
            assert result == {"output": f"a:before {i}", "model": "model-a"}
            assert (step.meta["version"], step.meta["model"]) == ("production", "model-a")

        cli_started = time.monotonic()
        code, out, err = await run_process(
            bandmaster_exe(),
            "models",
            "set",
            "classification",
            "--weights",
            "production=0,canary=1",
            "--by",
            "alice",
            "--db",
            db_path,
            "--models",
            models,
            cwd=tmp_path,
        )
        switched = time.monotonic()
        assert code == 0, err
        assert "canary=model-b (100%)" in out

        served: list[tuple[float, str, float]] = []  # (wall time, version, step start)
        while True:
            result, step = await classify(client, f"after {len(served)}")
            served.append((time.monotonic(), step.meta["version"], step.started_at.timestamp()))
            if step.meta["version"] == "canary":
                assert result["model"] == "model-b"
                break
            assert time.monotonic() - switched < 10, "the worker never adopted the switch"
        seen_at = served[-1][0]
        for i in range(5):
            _, step = await classify(client, f"later {i}")
            assert (step.meta["version"], step.meta["model"]) == ("canary", "model-b")

        (_, changed_at, changed_by) = client.store.alias_history("classification")[0]
        assert changed_by == "alice"
    assert proc.poll() is None, "the worker kept running: no restart"

    first_canary_start = served[-1][2]
    journal_latency = first_canary_start - changed_at
    # runs started after the change were served by the old version only until the adoption
    stale = [start for _, version, start in served if version == "production"]
    wall_latency = seen_at - switched
    print(
        f"\nhot switch: first canary step started {journal_latency * 1000:.0f} ms after the change "
        f"was committed; client saw it {wall_latency * 1000:.0f} ms after `models set` returned "
        f"({(seen_at - cli_started) * 1000:.0f} ms including CLI start-up); "
        f"{len(stale)} run(s) after the change still on production"
    )
    assert 0 <= journal_latency < SWITCH_BUDGET
    assert wall_latency < SWITCH_BUDGET
    assert all(start - changed_at < SWITCH_BUDGET for start in stale)
