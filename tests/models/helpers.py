"""Helpers for the model tests: a client for the scripted server process, registry entries
pointing at it, and a workflow that makes one journaled model call."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bandmaster as bm

if TYPE_CHECKING:  # extras openai and anthropic: imported by the helpers that build them
    from bandmaster.models.anthropic import AnthropicModel
    from bandmaster.models.openai_compat import OpenAIModel

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SCRIPTED_SERVER = HERE / "scripted_server.py"
OPENAI = "/v1/chat/completions"
ANTHROPIC = "/v1/messages"


class ScriptedServer:
    """Client of ``scripted_server.py`` running in another process."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def _request(self, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method="GET" if body is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def reset(self) -> None:
        self._request("/control", {"reset": True})

    def script(self, model: str, *queue: Any, default: Any = None) -> None:
        """``queue`` is consumed one behaviour per request, then ``default`` (else ``ok``)."""
        entry: dict[str, Any] = {"queue": list(queue)}
        if default is not None:
            entry["default"] = default
        self._request("/control", {"models": {model: entry}})

    def stats(self) -> dict[str, Any]:
        return self._request("/stats")  # type: ignore[no-any-return]

    def count(self, model: str) -> int:
        """Requests the server received for ``model`` (any endpoint)."""
        return sum(self.stats()["models"].get(model, {}).values())

    def behaviours(self, model: str) -> list[str]:
        return [entry["behaviour"] for entry in self.stats()["log"] if entry["model"] == model]

    def last_body(self, model: str) -> dict[str, Any]:
        return self.stats()["last"][model]  # type: ignore[no-any-return]

    # --- providers pointed at this server -------------------------------------------------

    def openai(self, model: str, **options: Any) -> OpenAIModel:
        from bandmaster.models.openai_compat import OpenAIModel

        return OpenAIModel(model, base_url=f"{self.url}/v1", api_key="test", **options)

    def anthropic(self, model: str, **options: Any) -> AnthropicModel:
        from bandmaster.models.anthropic import AnthropicModel

        # The anthropic SDK appends /v1/messages to its base URL itself.
        return AnthropicModel(model, base_url=self.url, api_key="test", **options)

    def openai_entry(self, model: str, **extra: Any) -> dict[str, Any]:
        return {"provider": "openai", "model": model, "base_url": f"{self.url}/v1", **extra}

    def anthropic_entry(self, model: str, **extra: Any) -> dict[str, Any]:
        return {"provider": "anthropic", "model": model, "base_url": self.url, **extra}


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for child processes: the repository importable (``tests.models...``), no
    inherited journal or registry, plain output."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("BANDMASTER_DB", "BANDMASTER_MODELS", "OPENAI_API_KEY", "ANTHROPIC_API_KEY")
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["COLUMNS"] = "200"
    env["NO_COLOR"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def bandmaster_exe() -> str:
    candidate = Path(sys.executable).parent / "bandmaster"
    return str(candidate) if candidate.exists() else "bandmaster"


# --- one journaled model call ------------------------------------------------------------


@bm.workflow
async def ask(target: str, text: str, key: str | None = None) -> bm.ModelResponse:
    return await bm.call_model(target, text, key=key)


async def call_in_run(
    engine: bm.Engine, target: str, text: str = "hello", *, key: str | None = None
) -> tuple[bm.ModelResponse, bm.StepInfo]:
    """Run ``ask`` to completion; return the response and the journal's model step."""
    handle = await engine.start(ask, target, text, key)
    response = await handle.result(timeout=30)
    return response, model_step(await handle.describe())


def model_step(info: bm.RunInfo) -> bm.StepInfo:
    steps = [s for s in info.steps if s.kind == "model"]
    assert len(steps) == 1, info.steps
    return steps[0]


@contextlib.contextmanager
def scripted_server_process(log: Path, *, timeout: float = 15.0) -> Iterator[ScriptedServer]:
    """``scripted_server.py`` as a separate process on 127.0.0.1, its stderr in ``log``. It binds
    port 0 (a free port the OS picks, so no race with other processes) and prints it; this waits
    until it answers, and kills it on exit."""
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(SCRIPTED_SERVER), "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("PORT "), f"scripted server did not start: {line!r} {log.read_text()}"
        server = ScriptedServer(int(line.split()[1]))
        deadline = time.monotonic() + timeout
        while True:
            try:
                server.stats()
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, f"scripted server exited: {log.read_text()}"
                assert time.monotonic() < deadline, "scripted server does not answer"
                time.sleep(0.02)
        yield server
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
