"""One worker process of the shared-breaker tests (test_shared_breakers.py):

    python breaker_worker.py NAME MODELS_YAML embedded DB
    python breaker_worker.py NAME MODELS_YAML temporal TARGET TASK_QUEUE

opens a worker of that backend (an embedded engine on the journal DB; a Temporal worker on
TASK_QUEUE, which syncs the task queue's model registry), prints ``READY``, then obeys one
command per stdin line and answers each with one JSON line on stdout (after ``@answer``):

* ``call LABEL``: one call of alias ``chat`` with input LABEL →
  ``{"label", "outcome", "started", "ended"}`` (``outcome``: ``ok`` or the error's type).
* ``burst LABEL N``: up to N calls back to back, stopping at the first ``CircuitOpen`` →
  ``{"calls": [...]}``.

Embedded: each call is a run of the workflow ``ask-NAME``, which only this process hosts, so the
call is made here. Temporal: activities of a task queue go to whichever worker polls first, so
a test could not say which worker made a call; each call runs the model activity's own code
(``call_model_recorded`` on the hub this worker's registry sync keeps) in this process.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import bandmaster as bm

ANSWER = "@answer"
"""Starts each line meant for the test (Temporal's core may log to stdout too)."""


def error_type(exc: BaseException) -> str:
    """The bandmaster error a call failed with (a run's failure names it as its type)."""
    kind = getattr(exc, "error_type", None) or getattr(exc, "type", None)
    return str(kind).rsplit(".", 1)[-1] if isinstance(kind, str) else type(exc).__name__


async def main(name: str, models: str, backend: str, *where: str) -> None:
    registry = bm.Registry.load(models)

    @bm.workflow(name=f"ask-{name}")
    async def ask(text: str) -> str:
        return (await bm.call_model("chat", text)).text

    engine: Any
    if backend == "embedded":
        engine = bm.Engine(where[0], workflows=[ask], registry=registry, poll_interval=0.01, lease=5.0)
    else:
        engine = bm.TemporalEngine(where[0], task_queue=where[1], workflows=[ask], registry=registry)
    await engine.open()
    import openai  # noqa: F401 - the SDK's first import takes seconds: not during a timed call

    async def call(label: str) -> dict[str, Any]:
        started = time.time()
        try:
            if backend == "embedded":
                handle = await engine.start(ask, label)
                await handle.result(timeout=30)
            else:
                from bandmaster.calls import call_model_recorded
                from bandmaster.engine import OpRecord

                await call_model_recorded("chat", label, OpRecord(), registry=registry)
            outcome = "ok"
        except Exception as exc:
            outcome = error_type(exc)
        return {"label": label, "outcome": outcome, "started": started, "ended": time.time()}

    print(ANSWER, "READY", flush=True)
    loop = asyncio.get_running_loop()
    try:
        while line := (await loop.run_in_executor(None, sys.stdin.readline)).split():
            if line[0] == "call":
                answer: dict[str, Any] = await call(line[1])
            elif line[0] == "burst":
                calls = []
                for i in range(int(line[2])):
                    calls.append(await call(f"{line[1]}-{i}"))
                    if calls[-1]["outcome"] == "CircuitOpen":
                        break
                answer = {"calls": calls}
            else:
                answer = {"error": f"unknown command {line[0]!r}"}
            print(ANSWER, json.dumps(answer), flush=True)
    finally:
        await engine.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
