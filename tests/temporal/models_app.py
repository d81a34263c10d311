"""Workflows and callable models for the model-desk tests on Temporal, loaded by real worker
processes (``bandmaster worker models_app.py --models models.yaml``). Models append
``<name> <pid>`` to ``$BM_MODELS_LOG`` so tests see which process served each call."""

from __future__ import annotations

import asyncio
import os
import time

import bandmaster as bm


def _served(name: str) -> str:
    path = os.environ.get("BM_MODELS_LOG")
    if path:
        with open(path, "a") as log:
            log.write(f"{name} {os.getpid()}\n")
    return f"{name} {time.time()!r} {os.getpid()}"


def blue(text: str) -> str:
    return _served("blue")


def green(text: str) -> str:
    return _served("green")


async def down(text: str) -> str:
    await asyncio.sleep(0.5)  # holds the worker's one activity slot (--concurrency 1)
    _served("down")
    raise bm.ProviderUnavailable("the primary is down")


async def spare(text: str) -> str:
    await asyncio.sleep(0.5)
    return _served("spare")


MODELS_YAML = """
models:
  blue: {provider: callable, function: "models_app:blue"}
  green: {provider: callable, function: "models_app:green"}
  down: {provider: callable, function: "models_app:down"}
  spare: {provider: callable, function: "models_app:spare"}
aliases:
  colour:
    versions: {production: blue, canary: green}
    weights: {production: 1.0, canary: 0.0}
  flaky:
    versions: {production: down}
    policy:
      retry: {attempts: 1}
      fallback: [spare]
      breaker: {failures: 4, window: 300, reset: 300}
"""


@bm.workflow
async def colours(seconds: float, pause: float) -> list[str]:
    """Ask ``colour`` again and again for ``seconds``: each answer says who served it when."""
    until = bm.now().timestamp() + seconds
    answers = []
    while bm.now().timestamp() < until:
        answers.append(str((await bm.call_model("colour", "hi")).output))
        if pause:  # Temporal's timers fire about a second late: 0 asks back to back
            await bm.sleep(pause)
    return answers


@bm.workflow
async def colour_once() -> str:
    return str((await bm.call_model("colour", "hi")).output)


@bm.workflow
async def flaky_once() -> str:
    return str((await bm.call_model("flaky", "hi")).output)
