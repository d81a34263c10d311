"""``bm.call_model``: requests, policy precedence, the journal record of a model step, replay
without calling the model again, sticky A/B in workflows, fallbacks and breakers around
Python models."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import bandmaster as bm
from bandmaster.calls import as_request

CALLS: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def calls() -> Counter[str]:
    CALLS.clear()
    return CALLS


def answer(text: str) -> tuple[str, float]:
    CALLS["answer"] += 1
    return f"answer to {text}", 0.9


def other(text: str) -> tuple[str, float]:
    CALLS["other"] += 1
    return f"other answer to {text}", 0.6


def priced(req: bm.ModelRequest) -> dict[str, Any]:
    CALLS["priced"] += 1
    return {"output": "ok", "usage": {"input_tokens": 1000, "output_tokens": 1000}}


class Flaky:
    """Fails ``failures`` times with ``error``, then answers."""

    def __init__(self, name: str, failures: int, error: Exception | None = None) -> None:
        self.name = name
        self.failures = failures
        self.error = error or bm.ProviderUnavailable(f"{name} is down")
        self.calls = 0

    async def request(self, req: bm.ModelRequest) -> bm.ModelResponse:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return bm.ModelResponse(output=f"{self.name}: {req.text()}", model=self.name)


class Hanging:
    name = "hanging"

    def __init__(self) -> None:
        self.calls = 0
        self.hang = True

    async def request(self, req: bm.ModelRequest) -> bm.ModelResponse:
        self.calls += 1
        if self.hang:
            await asyncio.sleep(30)
        return bm.ModelResponse(output="finally", model=self.name)


REGISTRY_DATA = {
    "aliases": {
        "classification": {
            "versions": {"production": "answer", "canary": "other"},
            "weights": {"production": 0.5, "canary": 0.5},
            "policy": {"retry": {"attempts": 1}, "timeout": 5},
        },
        "plain": {"versions": {"production": "answer"}},
    }
}


def make_registry() -> bm.Registry:
    return bm.Registry.from_dict(
        REGISTRY_DATA,
        models={
            "answer": bm.CallableModel(answer, name="answer"),
            "other": bm.CallableModel(other, name="other"),
            "gpt-4o-mini": bm.CallableModel(priced, name="gpt-4o-mini"),
        },
    )


# --- requests ---------------------------------------------------------------------------


def test_as_request_shapes() -> None:
    assert as_request("hi") == bm.ModelRequest(input="hi")
    chat = as_request([{"role": "user", "content": "hi"}], system="be brief", temperature=None)
    assert chat.input == [bm.Message(role="user", content="hi")]
    assert chat.system == "be brief"
    assert chat.temperature is None
    base = bm.ModelRequest(input="x", max_tokens=5)
    assert as_request(base) is base
    assert as_request(base, max_tokens=9, stop=None) == bm.ModelRequest(input="x", max_tokens=9)
    structured = as_request({"b": 1, "a": 2})
    assert structured.text() == '{"a": 2, "b": 1}'
    assert structured.messages() == [bm.Message(role="user", content='{"a": 2, "b": 1}')]


def test_fingerprint_covers_every_option() -> None:
    base = bm.ModelRequest(input="x")
    variants = [
        bm.ModelRequest(input="y"),
        bm.ModelRequest(input="x", system="s"),
        bm.ModelRequest(input="x", temperature=0.1),
        bm.ModelRequest(input="x", json_schema={"type": "object"}),
        bm.ModelRequest(input="x", params={"seed": 1}),
    ]
    assert base.fingerprint() == bm.ModelRequest(input="x").fingerprint()
    assert len({base.fingerprint(), *(v.fingerprint() for v in variants)}) == 6


# --- outside a workflow -------------------------------------------------------------------


async def test_call_a_model_object_directly() -> None:
    response = await bm.call_model(bm.CallableModel(answer), "ping")
    assert (response.output, response.confidence, response.model) == ("answer to ping", 0.9, "answer")


async def test_transient_failures_are_retried_by_default() -> None:
    flaky = Flaky("flaky", failures=2)
    response = await bm.call_model(flaky, "x", retry=bm.Retry(attempts=3, initial=0))
    assert response.output == "flaky: x"
    assert flaky.calls == 3


async def test_default_retry_makes_three_attempts() -> None:
    flaky = Flaky("flaky", failures=5)
    with pytest.raises(bm.RetriesExhausted, match="after 3 attempts"):
        await bm.call_model(flaky, "x", registry=bm.Registry())
    assert flaky.calls == 3


async def test_explicit_policy_overrides_the_alias_policy() -> None:
    registry = make_registry()
    flaky = Flaky("flaky-answer", failures=2)
    registry.register("answer", flaky)  # the alias's production version
    with pytest.raises(bm.ProviderUnavailable):
        await bm.call_model("plain", "x", registry=registry, retry=bm.Retry(attempts=1))
    response = await bm.call_model("plain", "x", registry=registry, retry=bm.Retry(attempts=5, initial=0))
    assert response.output == "flaky-answer: x"
    assert flaky.calls == 3


async def test_explicit_empty_fallback_disables_the_alias_fallback() -> None:
    registry = bm.Registry.from_dict(
        {
            "aliases": {
                "chat": {"versions": {"p": "down"}, "policy": {"retry": {"attempts": 1}, "fallback": ["up"]}}
            }
        },
        models={"down": Flaky("down", failures=99), "up": Flaky("up", failures=0)},
    )
    assert (await bm.call_model("chat", "x", registry=registry)).output == "up: x"
    with pytest.raises(bm.ProviderUnavailable, match="down is down"):
        await bm.call_model("chat", "x", registry=registry, fallback=[])


async def test_fallback_to_model_objects_and_aliases() -> None:
    registry = make_registry()
    down = Flaky("down", failures=99)
    response = await bm.call_model(
        down, "x", registry=registry, retry=bm.Retry(attempts=1), fallback=["plain"]
    )
    assert response.output == "answer to x"
    rescue = Flaky("rescue", failures=0)
    response = await bm.call_model(
        down, "y", registry=registry, retry=bm.Retry(attempts=1), fallback=[rescue]
    )
    assert response.output == "rescue: y"


async def test_timeout_per_attempt_then_fallback() -> None:
    hanging = Hanging()
    started = time.monotonic()
    response = await bm.call_model(
        hanging,
        "x",
        registry=bm.Registry(),
        timeout=0.1,
        retry=bm.Retry(attempts=2, initial=0),
        fallback=[bm.CallableModel(answer)],
    )
    assert response.output == "answer to x"
    assert hanging.calls == 2
    assert time.monotonic() - started < 2


async def test_cost_from_the_registry_prices_when_the_model_gives_none() -> None:
    response = await bm.call_model("gpt-4o-mini", "x", registry=make_registry())
    assert response.cost == pytest.approx((1000 * 0.15 + 1000 * 0.6) / 1e6)


# --- inside workflows ---------------------------------------------------------------------


@bm.workflow
async def classify(text: str, key: str | None = None) -> bm.ModelResponse:
    return await bm.call_model("classification", text, key=key)


@bm.workflow
async def classify_then_sleep(text: str) -> str:
    first = await bm.call_model("plain", text)
    await bm.sleep(0.2)  # longer than max_inline_sleep: the coroutine is dropped and replayed
    second = await bm.call_model("plain", text + "!")
    return f"{first.output} | {second.output}"


@bm.workflow
async def failing_then_sleep(text: str) -> str:
    try:
        await bm.call_model("broken", text)
    except bm.StepError as exc:
        caught = f"caught {type(exc).__name__}"
    await bm.sleep(0.2)
    return caught


@bm.step
async def enrich(text: str) -> str:
    response = await bm.call_model("plain", text)
    return f"enriched {response.output}"


@bm.workflow
async def step_calls_model(text: str) -> str:
    return await enrich(text)


EngineMaker = Callable[..., Awaitable[bm.Engine]]


@pytest.fixture
async def make_engine(db_path: Path) -> AsyncIterator[EngineMaker]:
    engines: list[bm.Engine] = []

    async def make(registry: bm.Registry, **options: Any) -> bm.Engine:
        engine = bm.Engine(
            db_path,
            registry=registry,
            workflows=[classify, classify_then_sleep, failing_then_sleep, step_calls_model],
            poll_interval=0.02,
            lease=2.0,
            **options,
        )
        await engine.open()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.close(grace=1.0)


async def test_model_step_in_the_journal(make_engine: EngineMaker) -> None:
    engine = await make_engine(make_registry())
    handle = await engine.start(classify, "refund?", "user-7")
    response = await handle.result(timeout=10)
    assert isinstance(response, bm.ModelResponse), "pydantic models come back as pydantic models"
    (step,) = (await handle.describe()).steps
    assert (step.name, step.kind, step.status, step.attempts) == ("classification", "model", "completed", 1)
    assert step.output["output"] == response.output
    meta = step.meta
    assert meta["request"]["input"] == "refund?", "what was sent is what the journal shows"
    assert meta["alias"] == "classification"
    assert meta["version"] in ("production", "canary")
    assert meta["model"] == meta["served_by"] == response.model
    assert meta["fallback"] is None
    assert meta["cache_hit"] is False
    assert meta["tokens"] == {"input": 0, "output": 0}
    assert meta["confidence"] == response.confidence


async def test_sticky_key_in_workflows(make_engine: EngineMaker) -> None:
    engine = await make_engine(make_registry())
    versions: dict[str, set[str]] = {}
    for user in ("alice", "bob", "carol", "dave", "erin", "frank"):
        for _ in range(3):
            handle = await engine.start(classify, "hi", user)
            await handle.result(timeout=10)
            (step,) = (await handle.describe()).steps
            versions.setdefault(user, set()).add(step.meta["version"])
    assert all(len(v) == 1 for v in versions.values()), versions
    expected = {u: make_registry().resolve("classification", key=u).version for u in versions}
    assert {u: next(iter(v)) for u, v in versions.items()} == expected


async def test_replay_returns_the_recorded_response(make_engine: EngineMaker, calls: Counter[str]) -> None:
    engine = await make_engine(make_registry(), max_inline_sleep=0.05)
    handle = await engine.start(classify_then_sleep, "q")
    assert await handle.result(timeout=10) == "answer to q | answer to q!"
    assert calls["answer"] == 2, "the first call was replayed from the journal, not made again"
    info = await handle.describe()
    assert [(s.name, s.kind) for s in info.steps] == [
        ("plain", "model"),
        ("sleep", "sleep"),
        ("plain", "model"),
    ]


async def test_replay_re_raises_a_recorded_failure(make_engine: EngineMaker) -> None:
    broken = Flaky("broken", failures=99)
    registry = bm.Registry(models={"broken": broken})
    engine = await make_engine(registry, max_inline_sleep=0.05)
    handle = await engine.start(failing_then_sleep, "q")
    assert await handle.result(timeout=10) == "caught RetriesExhausted"
    assert broken.calls == 3, "three attempts, and none again on replay"
    (step, _) = (await handle.describe()).steps
    assert (step.status, step.attempts) == ("failed", 3)


async def test_call_inside_a_step_is_part_of_the_step(make_engine: EngineMaker) -> None:
    engine = await make_engine(make_registry())
    handle = await engine.start(step_calls_model, "x")
    assert await handle.result(timeout=10) == "enriched answer to x"
    assert [(s.name, s.kind) for s in (await handle.describe()).steps] == [("enrich", "step")]


# --- breakers around Python models ----------------------------------------------------------


async def test_breaker_skips_an_open_model() -> None:
    down = Flaky("down", failures=99)
    registry = bm.Registry(models={"down": down, "up": Flaky("up", failures=0)})
    policy: dict[str, Any] = {
        "registry": registry,
        "retry": bm.Retry(attempts=1),
        "breaker": bm.Breaker(failures=2, reset=60),
        "fallback": ["up"],
    }
    for _ in range(5):
        assert (await bm.call_model("down", "x", **policy)).output == "up: x"
    assert down.calls == 2
    with pytest.raises(bm.CircuitOpen, match="down: circuit open since"):
        await bm.call_model("down", "x", **{**policy, "fallback": []})


async def test_cancelled_trial_does_not_wedge_the_breaker() -> None:
    hanging = Hanging()
    registry = bm.Registry(models={"hanging": hanging, "up": Flaky("up", failures=0)})
    policy: dict[str, Any] = {
        "registry": registry,
        "retry": bm.Retry(attempts=1),
        "timeout": 0.05,
        "breaker": bm.Breaker(failures=1, reset=0.2),
        "fallback": ["up"],
    }
    await bm.call_model("hanging", "x", **policy)  # times out: breaker opens
    await asyncio.sleep(0.25)
    trial = asyncio.create_task(bm.call_model("hanging", "x", **{**policy, "timeout": None}))
    await asyncio.sleep(0.05)
    assert hanging.calls == 2, "the half-open trial is in flight"
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    hanging.hang = False  # the model has recovered
    await asyncio.sleep(0.3)  # more than a reset later
    response = await bm.call_model("hanging", "x", **policy)
    assert response.output == "finally"
    assert hanging.calls == 3
