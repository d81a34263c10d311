"""Step policies around real provider calls, inside workflows on an engine: retries honouring
Retry-After, fallback chains, circuit breakers, the response cache, and a run of 100
workflows under injected faults. The journal is the witness of what happened."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from typing import Any

import pytest

import bandmaster as bm

from .conftest import EngineFactory
from .helpers import OPENAI, ScriptedServer, ask, call_in_run, model_step

PRIMARY = "gpt-4o-mini"
BACKUP = "claude-haiku-4-5"


def registry(
    server: ScriptedServer, policy: dict[str, Any], *, anthropic_primary: bool = False
) -> bm.Registry:
    """Alias ``chat``: production ``primary`` (OpenAI API), fallbacks as the policy says;
    ``backup`` speaks the Anthropic API."""
    # An OpenAI model id behind the Anthropic API has no catalogue price there: give it one.
    primary = (
        server.anthropic_entry(PRIMARY, price={"input": 0.15, "output": 0.6})
        if anthropic_primary
        else server.openai_entry(PRIMARY)
    )
    return bm.Registry.from_dict(
        {
            "models": {"primary": primary, "backup": server.anthropic_entry(BACKUP)},
            "aliases": {"chat": {"versions": {"production": "primary"}, "policy": policy}},
        }
    )


# --- retry ------------------------------------------------------------------------------


@pytest.mark.parametrize("anthropic_primary", [False, True], ids=["openai", "anthropic"])
async def test_retry_after_is_honoured(
    server: ScriptedServer, engine_for: EngineFactory, anthropic_primary: bool
) -> None:
    server.script(PRIMARY, {"kind": "429", "retry_after": 1}, "ok")
    engine = await engine_for(
        registry(server, {"retry": {"attempts": 3, "initial": 0.01}}, anthropic_primary=anthropic_primary)
    )
    started = time.monotonic()
    response, step = await call_in_run(engine, "chat")
    elapsed = time.monotonic() - started
    assert response.text == "echo: hello"
    assert elapsed >= 0.95, f"Retry-After: 1 was not honoured (call took {elapsed:.3f}s)"
    assert elapsed < 10
    assert step.attempts == 2
    assert step.status == "completed"
    assert len(step.meta["attempt_errors"]) == 1
    assert step.meta["attempt_errors"][0].startswith("RateLimited: ")
    assert server.count(PRIMARY) == 2, "SDK retries are off: the server saw bandmaster's attempts only"


async def test_retry_after_longer_than_total_budget_gives_up(
    server: ScriptedServer, engine_for: EngineFactory
) -> None:
    server.script(PRIMARY, default={"kind": "429", "retry_after": 30})
    engine = await engine_for(registry(server, {"retry": {"attempts": 5, "initial": 0.01, "total": 1.0}}))
    started = time.monotonic()
    handle = await engine.start(ask, "chat", "hello", None)
    with pytest.raises(bm.RunFailed) as caught:
        await handle.result(timeout=30)
    assert time.monotonic() - started < 5
    assert isinstance(caught.value.__cause__, bm.RateLimited)
    assert caught.value.__cause__.retry_after == 30
    assert server.count(PRIMARY) == 1


async def test_invalid_request_is_not_retried_in_a_workflow(
    server: ScriptedServer, engine_for: EngineFactory
) -> None:
    server.script(PRIMARY, default="400")
    engine = await engine_for(registry(server, {"retry": {"attempts": 3, "initial": 0.01}}))
    handle = await engine.start(ask, "chat", "hello", None)
    with pytest.raises(bm.RunFailed) as caught:
        await handle.result(timeout=30)
    assert caught.value.error_type == "bandmaster.errors.InvalidRequest"
    step = model_step(await handle.describe())
    assert (step.status, step.attempts) == ("failed", 1)
    assert server.count(PRIMARY) == 1


# --- fallback ---------------------------------------------------------------------------


async def test_fallback_after_exhausted_retries(server: ScriptedServer, engine_for: EngineFactory) -> None:
    server.script(PRIMARY, default="500")
    engine = await engine_for(
        registry(server, {"retry": {"attempts": 2, "initial": 0.01}, "fallback": ["backup"]})
    )
    response, step = await call_in_run(engine, "chat")
    assert response.text == "echo: hello"
    assert response.model == BACKUP
    meta = step.meta
    assert meta["alias"] == "chat"
    assert meta["version"] == "production"
    assert meta["served_by"] == "backup"
    assert meta["fallback"] == "backup"
    assert meta["model"] == BACKUP
    assert meta["tokens"] == {"input": 11, "output": 7}
    assert meta["cost"] == pytest.approx((11 * 1.0 + 7 * 5.0) / 1e6)
    assert step.attempts == 3, "two attempts on the primary, one on the fallback"
    assert [e.split(":")[0] for e in meta["attempt_errors"]] == ["ProviderUnavailable"] * 2
    assert server.count(PRIMARY) == 2
    assert server.count(BACKUP) == 1


async def test_primary_success_records_no_fallback(server: ScriptedServer, engine_for: EngineFactory) -> None:
    engine = await engine_for(registry(server, {"fallback": ["backup"]}))
    _, step = await call_in_run(engine, "chat")
    assert step.meta["served_by"] == "primary"
    assert step.meta["fallback"] is None
    assert "attempt_errors" not in step.meta
    assert server.count(BACKUP) == 0


async def test_every_model_failing_is_fallbacks_exhausted(
    server: ScriptedServer, engine_for: EngineFactory
) -> None:
    server.script(PRIMARY, default="500")
    server.script(BACKUP, default={"kind": "429", "retry_after": 0})
    engine = await engine_for(
        registry(server, {"retry": {"attempts": 2, "initial": 0.01}, "fallback": ["backup"]})
    )
    handle = await engine.start(ask, "chat", "hello", None)
    with pytest.raises(bm.RunFailed) as caught:
        await handle.result(timeout=30)
    error = caught.value.__cause__
    assert isinstance(error, bm.FallbacksExhausted)
    assert set(error.errors) == {"primary", "backup"}
    primary_error, backup_error = error.errors["primary"], error.errors["backup"]
    assert isinstance(primary_error, bm.RetriesExhausted)
    assert [type(e) for e in primary_error.errors] == [bm.ProviderUnavailable] * 2
    assert isinstance(backup_error, bm.RetriesExhausted)
    assert [type(e) for e in backup_error.errors] == [bm.RateLimited] * 2
    assert "every model in the fallback chain failed" in caught.value.message
    step = model_step(await handle.describe())
    assert (step.status, step.attempts) == ("failed", 4)
    assert step.error is not None
    assert step.error["type"] == "bandmaster.errors.FallbacksExhausted"


async def test_fallbacks_exhausted_outside_a_workflow(server: ScriptedServer) -> None:
    server.script(PRIMARY, default="500")
    server.script(BACKUP, default="401")
    reg = registry(server, {"retry": {"attempts": 2, "initial": 0}, "fallback": ["backup"]})
    with pytest.raises(bm.FallbacksExhausted) as caught:
        await bm.call_model("chat", "hello", registry=reg)
    assert isinstance(caught.value.errors["primary"], bm.RetriesExhausted)
    assert isinstance(caught.value.errors["backup"], bm.AuthenticationFailed)
    assert server.count(BACKUP) == 1


# --- circuit breaker ----------------------------------------------------------------------


def breaker_registry(server: ScriptedServer, reset: float) -> bm.Registry:
    return registry(
        server,
        {
            "retry": {"attempts": 1},
            "fallback": ["backup"],
            "breaker": {"failures": 2, "window": 30, "reset": reset},
        },
    )


async def test_open_breaker_sends_calls_straight_to_the_fallback(
    server: ScriptedServer, engine_for: EngineFactory
) -> None:
    server.script(PRIMARY, default="500")
    # The reset leaves calls started in the first 0.3 s of the open state over a second to
    # finish before a trial is due, even when a loaded machine makes a run take that long.
    engine = await engine_for(breaker_registry(server, reset=1.5))
    for _ in range(2):
        _, step = await call_in_run(engine, "chat")
        assert step.meta["served_by"] == "backup"
    assert step.meta["breakers"] == {"primary": "open", "backup": "closed"}
    assert server.count(PRIMARY) == 2
    opened = time.time()
    while time.time() - opened < 0.3:  # well inside the reset timeout
        _, step = await call_in_run(engine, "chat")
        assert step.meta["served_by"] == "backup"
        assert step.meta["breakers"]["primary"] == "open"
        assert step.attempts == 1, "no attempt is spent on an open breaker"
    assert server.count(PRIMARY) == 2, "no request reaches the primary while its breaker is open"

    server.script(PRIMARY, default="ok")
    await asyncio.sleep(1.6 - (time.time() - opened))
    _, step = await call_in_run(engine, "chat")
    assert step.meta["served_by"] == "primary"
    assert step.meta["breakers"]["primary"] == "closed"
    assert server.count(PRIMARY) == 3, "exactly one trial request after the reset"
    await call_in_run(engine, "chat")
    assert server.count(PRIMARY) == 4


async def test_failed_trial_reopens_the_breaker(server: ScriptedServer, engine_for: EngineFactory) -> None:
    server.script(PRIMARY, default="500")
    # The three calls after the failed trial must all fit in one reset: 1.5 s is ample.
    engine = await engine_for(breaker_registry(server, reset=1.5))
    for _ in range(2):
        await call_in_run(engine, "chat")
    await asyncio.sleep(1.6)
    _, trial = await call_in_run(engine, "chat")
    assert server.count(PRIMARY) == 3, "one trial"
    assert trial.meta["served_by"] == "backup"
    assert trial.meta["breakers"]["primary"] == "open"
    for _ in range(3):
        await call_in_run(engine, "chat")
    assert server.count(PRIMARY) == 3, "open again: no further requests until the next reset"


async def test_concurrent_calls_send_one_trial(server: ScriptedServer, engine_for: EngineFactory) -> None:
    server.script(PRIMARY, default="500")
    engine = await engine_for(breaker_registry(server, reset=0.3))
    for _ in range(2):
        await call_in_run(engine, "chat")
    await asyncio.sleep(0.4)
    # The trial stays in flight long enough for all five runs to reach the breaker while it
    # does, however late a loaded machine starts them.
    server.script(PRIMARY, default={"kind": "slow", "delay": 2.0})
    results = await asyncio.gather(*(call_in_run(engine, "chat", f"q{i}") for i in range(5)))
    served = Counter(step.meta["served_by"] for _, step in results)
    assert served == Counter({"primary": 1, "backup": 4})
    assert server.count(PRIMARY) == 3


async def test_open_breaker_without_fallback_raises_circuit_open(
    server: ScriptedServer, engine_for: EngineFactory
) -> None:
    server.script(PRIMARY, default="500")
    reg = registry(server, {"retry": {"attempts": 1}, "breaker": {"failures": 1, "reset": 60}})
    engine = await engine_for(reg)
    handle = await engine.start(ask, "chat", "hello", None)
    with pytest.raises(bm.RunFailed, match="ProviderUnavailable"):
        await handle.result(timeout=30)
    handle = await engine.start(ask, "chat", "hello", None)
    with pytest.raises(bm.RunFailed) as caught:
        await handle.result(timeout=30)
    assert isinstance(caught.value.__cause__, bm.CircuitOpen)
    assert "circuit open" in caught.value.message
    assert server.count(PRIMARY) == 1


# --- cache ------------------------------------------------------------------------------


async def test_cache_hit_miss_and_expiry(server: ScriptedServer, engine_for: EngineFactory) -> None:
    # The second call must come within the ttl of the first one's end: 2 s covers a loaded machine.
    engine = await engine_for(registry(server, {"cache": {"ttl": 2.0}}))
    first, step = await call_in_run(engine, "chat", "same question")
    assert step.meta["cache_hit"] is False
    assert server.count(PRIMARY) == 1

    second, step = await call_in_run(engine, "chat", "same question")
    assert step.meta["cache_hit"] is True
    assert step.meta["cost"] == 0.0, "a cached answer costs nothing"
    assert step.meta["model"] == PRIMARY
    assert second.text == first.text
    assert second.usage == first.usage
    assert server.count(PRIMARY) == 1, "served from the cache"

    _, step = await call_in_run(engine, "chat", "another question")
    assert step.meta["cache_hit"] is False
    assert server.count(PRIMARY) == 2

    await asyncio.sleep(2.1)
    _, step = await call_in_run(engine, "chat", "same question")
    assert step.meta["cache_hit"] is False, "expired after the ttl"
    assert server.count(PRIMARY) == 3


async def test_cache_keys_on_every_request_option(server: ScriptedServer, engine_for: EngineFactory) -> None:
    @bm.workflow
    async def ask_json(text: str) -> bm.ModelResponse:
        return await bm.call_model("chat", text, json_schema={"type": "object"})

    server.script(PRIMARY, default={"kind": "ok", "json": {"a": 1}})
    engine = await engine_for(registry(server, {"cache": {"ttl": 60}}))
    await call_in_run(engine, "chat", "q")
    handle = await engine.start(ask_json, "q")
    assert (await handle.result(timeout=30)).output == {"a": 1}
    assert model_step(await handle.describe()).meta["cache_hit"] is False
    assert server.count(PRIMARY) == 2


# --- 100 runs under injected faults -------------------------------------------------------


# An attempt's outcome in the journal, for each thing the server may have done with it.
_OUTCOMES_FOR = {"429": {"RateLimited", "StepTimeout"}, "slow": {"StepTimeout"}, "ok": {"ok", "StepTimeout"}}


def _server_requests_are_journaled_attempts(served: list[str], attempts: list[str]) -> bool:
    """Whether the requests the server logged for a run (``served``: their behaviours) and the
    run's journaled attempts (``attempts``: ``ok`` or the error type) pair up one to one, each
    attempt ending as its request's behaviour allows. A 429 may end as ``StepTimeout`` when the
    attempt's timeout fired before the client read the answer; an attempt may have no request
    only when it timed out before its request reached the server. Pairs need not keep order: on
    a loaded machine the server's threads may log two requests out of order."""
    return any(
        len(served) <= len(order)
        and all(
            outcome in _OUTCOMES_FOR[behaviour] for behaviour, outcome in zip(served, order, strict=False)
        )
        and all(outcome == "StepTimeout" for outcome in order[len(served) :])
        for order in itertools.permutations(attempts)
    )


async def test_100_runs_under_injected_faults(server: ScriptedServer, engine_for: EngineFactory) -> None:
    """The primary times out on ~3% of requests and rate-limits a burst of 45 requests in a row
    (more than the 20 runs in flight, so some runs see three 429s); with {timeout, retry,
    fallback} every run completes and the journal says who answered each.

    The journal is checked against the server's log run by run: every request the server saw is
    a journaled attempt of that run with a matching outcome, every 429 the journal reports was
    sent, and the 429s it does not report as such are attempts whose 0.5 s timeout fired first
    (which a loaded machine makes happen: the answer was sent, not read in time)."""
    policy = {
        "timeout": 0.5,
        "retry": {"attempts": 3, "initial": 0.01, "max_delay": 0.05},
        "fallback": ["backup"],
    }
    engine = await engine_for(registry(server, policy), concurrency=20)
    # The first request of each SDK client builds the client and imports its transport, which
    # takes longer than the 0.5 s timeout on a loaded machine: warm both up, then start counting.
    await call_in_run(engine, "chat", "warm-up")
    await call_in_run(engine, "backup", "warm-up")
    server.reset()

    slow_at = {5, 20, 30, 110, 125}  # ~3% of the ~160 requests the primary receives
    queue: list[Any] = []
    for index in range(200):  # requests in arrival order; then "ok"
        if 45 <= index < 90:
            queue.append({"kind": "429", "retry_after": 0.1})
        elif index in slow_at:
            queue.append({"kind": "slow", "delay": 2.0})
        else:
            queue.append("ok")
    server.script(PRIMARY, *queue)
    started = time.monotonic()
    handles = [await engine.start(ask, "chat", f"ticket {i}", None) for i in range(100)]
    responses = await asyncio.gather(*(h.result(timeout=60) for h in handles))
    elapsed = time.monotonic() - started
    steps = [model_step(await h.describe()) for h in handles]

    assert all(s.status == "completed" for s in steps)
    assert [r.text for r in responses] == [f"echo: ticket {i}" for i in range(100)]
    served = Counter(s.meta["served_by"] for s in steps)
    assert sum(served.values()) == 100
    assert set(served) <= {"primary", "backup"}
    assert served["primary"] >= 60
    assert served["backup"] >= 1, "a 45-request burst outlasts some runs' three attempts"

    log = server.stats()["log"]
    behaviours = Counter(e["behaviour"] for e in log if e["model"] == PRIMARY)
    errors = Counter(e.split(":")[0] for s in steps for e in s.meta.get("attempt_errors", []))
    late_429s = behaviours["429"] - errors["RateLimited"]
    print(
        f"\n100 runs in {elapsed:.2f}s; served by: {dict(served)}; attempt errors: {dict(errors)}; "
        f"429s answered after the attempt timed out: {late_429s}"
    )
    assert behaviours["429"] == 45, "the whole burst was served"
    assert behaviours["slow"] >= 3
    assert set(errors) <= {"RateLimited", "StepTimeout"}
    assert 0 <= late_429s <= errors["StepTimeout"] - behaviours["slow"], "every slow answer timed out"

    requests: dict[tuple[str, str], list[str]] = {}
    for entry in log:
        requests.setdefault((entry["model"], entry["text"]), []).append(entry["behaviour"])
    primary_attempts = 0
    for index, step in enumerate(steps):
        failed = [e.split(":")[0] for e in step.meta.get("attempt_errors", [])]
        assert len(failed) + 1 == step.attempts, "every attempt but the last one failed"
        if step.meta["served_by"] == "backup":
            assert step.meta["fallback"] == "backup"
            assert len(failed) >= 3, "the fallback is used only after the primary's 3 attempts failed"
            primary, backup = failed[:3], [*failed[3:], "ok"]
        else:
            assert len(failed) <= 2
            primary, backup = [*failed, "ok"], []
        text = f"ticket {index}"
        for model, attempts in ((PRIMARY, primary), (BACKUP, backup)):
            logged = requests.get((model, text), [])
            assert _server_requests_are_journaled_attempts(logged, attempts), (
                f"run {index} on {model}: the server answered {logged}, the journal says {attempts}"
            )
        primary_attempts += len(primary)
    assert sum(len(v) for (model, _), v in requests.items() if model == PRIMARY) == server.count(PRIMARY)
    assert primary_attempts >= server.count(PRIMARY) == server.stats()["models"][PRIMARY][OPENAI]
    assert served["backup"] <= server.count(BACKUP)
