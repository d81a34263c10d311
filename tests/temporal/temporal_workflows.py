"""Workflows the backend-parametrised tests run; module-level, as the Temporal backend needs.

Side effects are appended to the file named by ``$BM_TEST_EFFECTS`` (or the path passed in),
so tests can count how often each step really ran.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import BaseModel

import bandmaster as bm


class Ticket(BaseModel):
    id: str
    text: str


class Intent(BaseModel):
    label: str
    confidence: float


def effect(log: str, line: str) -> None:
    with open(log, "a") as f:
        f.write(line + "\n")


def count(log: str, line: str) -> int:
    path = Path(log)
    return path.read_text().splitlines().count(line) if path.exists() else 0


@bm.step
async def record(log: str, name: str, delay: float = 0.0) -> str:
    await asyncio.sleep(delay)
    effect(log, name)
    return name


@bm.workflow
async def ordered(log: str) -> list[str]:
    first = await record(log, "a")
    # gather: numbered by call order although "b" finishes last
    rest = await asyncio.gather(record(log, "b", 0.3), record(log, "c"))
    return [first, *rest]


@bm.step(retry=bm.Retry(attempts=3, initial=0.05, multiplier=1.0, jitter=False))
async def flaky(log: str, kind: str, failures: int) -> str:
    effect(log, f"flaky-{kind}")
    if count(log, f"flaky-{kind}") <= failures:
        if kind == "retryable":
            raise bm.ProviderUnavailable("503 from the provider")
        raise bm.InvalidRequest("400: bad prompt")
    return f"ok after {count(log, f'flaky-{kind}')}"


@bm.workflow
async def retrying(log: str, kind: str, failures: int) -> str:
    return await flaky(log, kind, failures)


@bm.step(timeout=0.3)
async def slow(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


@bm.workflow
async def timing_out(seconds: float) -> str:
    try:
        return await slow(seconds)
    except bm.StepTimeout:
        return "timed out"


@bm.workflow
async def sleeper(seconds: float) -> float:
    before = bm.now()
    await bm.sleep(seconds)
    return (bm.now() - before).total_seconds()


@bm.workflow
async def review(ticket: Ticket, timeout: float) -> str:
    decision: str = await bm.wait_for("review", timeout=timeout, default="send")
    return f"{ticket.id}:{decision}"


@bm.workflow
async def strict_review() -> str:
    return str(await bm.wait_for("review", timeout=0.5))


@bm.workflow
async def forever() -> str:
    await bm.wait_for("never")
    return "unreachable"


@bm.step(local=True)
def classify(ticket: Ticket) -> Intent:  # a sync step, run as a local activity on Temporal
    return Intent(label="billing" if "charged" in ticket.text else "other", confidence=0.9)


@bm.workflow
async def triage(ticket: Ticket) -> Intent:
    intent = await classify(ticket)
    assert isinstance(intent, Intent)  # a model, not a dict, inside the workflow too
    return intent


@bm.step
async def fails() -> str:
    raise ValueError("the step broke")


@bm.workflow
async def failing() -> str:
    return await fails()


@bm.step  # no retry, no timeout: a step lost with its worker still runs again elsewhere
async def side(log: str, name: str, seconds: float) -> str:
    """Sleeps, then records its effect: a worker killed during the sleep leaves no effect."""
    await asyncio.sleep(seconds)
    effect(log, name)
    return name


@bm.workflow
async def chain(log: str, steps: int, seconds: float) -> list[str]:
    return [await side(log, f"s{i}", seconds) for i in range(steps)]


@bm.workflow
async def waits_then_steps(log: str) -> str:
    await bm.wait_for("go")
    return await record(log, "after-go")


def shout(text: str) -> str:
    return text.upper()


def broken(text: str) -> str:
    raise bm.ProviderUnavailable("the primary model is down")


def registry() -> bm.Registry:
    """``answer`` is an alias whose primary is down: the fallback answers."""
    return bm.Registry.from_dict(
        {
            "aliases": {
                "answer": {
                    "versions": {"production": "broken"},
                    "policy": {"retry": {"attempts": 2, "initial": 0.01}, "fallback": ["shout"]},
                }
            }
        },
        models={"shout": bm.CallableModel(shout), "broken": bm.CallableModel(broken)},
    )


@bm.workflow
async def ask(text: str) -> str:
    direct = await bm.call_model("shout", text)
    assert isinstance(direct, bm.ModelResponse)
    fallen_back = await bm.call_model("answer", text + "?")
    return f"{direct.output} {fallen_back.output} {fallen_back.model}"


@bm.workflow
async def ask_streamed(text: str) -> list[str]:
    """A streamed call through the alias whose primary is down; then the response."""
    stream = bm.stream_model("answer", text)
    chunks = [chunk.text async for chunk in stream]
    return [*chunks, stream.response.model]


@bm.workflow
async def typed_wait() -> str:
    ticket = await bm.wait_for("ticket", type=Ticket)
    return ticket.text


@bm.step
async def trace_id() -> str:
    """The OpenTelemetry trace this step runs in (the activity's context)."""
    from opentelemetry import trace

    return format(trace.get_current_span().get_span_context().trace_id, "032x")


@bm.workflow
async def traced() -> list[str]:
    return [await trace_id(), await trace_id()]
