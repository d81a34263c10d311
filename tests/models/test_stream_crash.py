"""A ``bandmaster worker`` process SIGKILLed in the middle of a model stream: another worker
resumes the run, the call is made again (streamed again from the start), and the journal
holds exactly one final response."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

import bandmaster as bm

from .helpers import HERE, ScriptedServer, bandmaster_exe, subprocess_env

WF_STREAM = HERE / "wf_stream.py"
MODEL = "gpt-4o-mini"
PIECES = ["one ", "two ", "three ", "four ", "five ", "six"]
READY_TIMEOUT = 20.0


@contextmanager
def worker(tmp_path: Path, db_path: Path, models: Path, name: str) -> Iterator[subprocess.Popen[bytes]]:
    err_path = tmp_path / f"{name}.err"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [
                bandmaster_exe(),
                "worker",
                str(WF_STREAM),
                "--db",
                str(db_path),
                "--models",
                str(models),
                "--poll",
                "0.02",
                "--lease",
                "1",
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
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=15)


def published(db_path: Path, run_id: str) -> str:
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT text FROM stream_chunks WHERE run_id = ? ORDER BY id", (run_id,))
        return "".join(text for (text,) in rows)


async def test_sigkill_mid_stream_makes_the_call_again_on_resume(
    server: ScriptedServer, tmp_path: Path, db_path: Path
) -> None:
    models = tmp_path / "models.yaml"
    entry = server.openai_entry(MODEL)
    models.write_text(
        yaml.safe_dump(
            {"models": {"primary": entry}, "aliases": {"chat": {"versions": {"production": "primary"}}}}
        )
    )
    # The first answer streams slowly (the worker dies in it); the second at full speed.
    server.script(
        MODEL, {"kind": "ok", "chunks": PIECES, "chunk_delay": 1.0}, {"kind": "ok", "chunks": PIECES}
    )
    async with bm.Engine(db_path, worker=False) as client:
        with worker(tmp_path, db_path, models, "first") as first:
            handle: bm.RunHandle[Any] = await client.start("chat", "chat", "hello")
            deadline = time.monotonic() + 30
            while not published(db_path, handle.id).startswith("one two "):  # live chunks seen
                assert time.monotonic() < deadline, "no chunks were published"
                await asyncio.sleep(0.02)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=15)
        assert [s.kind for s in (await handle.describe()).steps] == [], "nothing journaled mid-stream"
        with worker(tmp_path, db_path, models, "second"):
            result = await handle.result(timeout=60)
        info = await handle.describe()
    assert result["chunks"] == PIECES, "the resumed run streamed the new call from its start"
    assert server.count(MODEL) == 2, "the call was made again"
    steps = [s for s in info.steps if s.kind == "model"]
    assert len(steps) == 1
    assert steps[0].status == "completed"
    assert steps[0].meta["tokens"] == {"input": 11, "output": 7}
    assert published(db_path, handle.id) == "".join(PIECES), "the dead stream's rows were cleared"
