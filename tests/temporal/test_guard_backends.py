"""``bm.call_model(guard=...)`` with the same test code on both backends, against the real
scripted provider process: re-ask, fall back to the next model, fail on a violation, custom
guards; the guard log in ``describe`` as the embedded journal keeps it."""

from __future__ import annotations

import pytest

pytest.importorskip("temporalio", reason="the Temporal backend needs: pip install 'bandmaster[temporal]'")
import temporal_graphs as graphs
import temporal_workflows as wfs
from temporal_support import EngineFactory

import bandmaster as bm
from models.conftest import scripted_process, server  # noqa: F401  (fixtures, used by name)
from models.helpers import ScriptedServer

pytestmark = pytest.mark.timeout(120)

PRIMARY = "tgraph-primary"
BACKUP = "tgraph-backup"
VALID = {"subject": "Your refund", "body": "We refunded the second charge.", "tone": "friendly"}


def registry(server: ScriptedServer) -> bm.Registry:  # noqa: F811
    """``drafter``: the primary on the scripted server, falling back to the backup; one
    attempt per model (each request is one behaviour the test scripts)."""
    price = {"input": 1.0, "output": 2.0}  # made-up model ids: no catalogue price
    return bm.Registry.from_dict(
        {
            "models": {
                "primary": server.openai_entry(PRIMARY, price=price),
                "backup": server.openai_entry(BACKUP, price=price),
            },
            "aliases": {
                "drafter": {
                    "versions": {"production": "primary"},
                    "policy": {"retry": {"attempts": 1}, "fallback": ["backup"]},
                }
            },
        }
    )


def model_step(info: bm.RunInfo) -> bm.StepInfo:
    [step] = [s for s in info.steps if s.kind == "model"]
    return step


async def test_an_invalid_answer_is_re_asked_and_the_attempts_are_journaled(
    make_engine: EngineFactory,
    server: ScriptedServer,  # noqa: F811
) -> None:
    server.script(PRIMARY, "wrong_schema", {"kind": "ok", "json": VALID})
    engine = await make_engine([graphs.draft_reply], registry=registry(server))
    handle = await engine.start(graphs.draft_reply, "I was charged twice")
    assert await handle.result(timeout=30) == {"subject": "Your refund", "model": PRIMARY}
    assert server.count(PRIMARY) == 2

    step = model_step(await engine.describe(handle.id))
    assert (step.name, step.status, step.attempts) == ("drafter", "completed", 2)
    attempts = step.meta["guard"]["attempts"]
    assert [(a["model"], a["attempt"]) for a in attempts] == [("primary", 1), ("primary", 2)]
    assert "Field required" in attempts[0]["error"]
    assert attempts[1]["error"] is None
    assert step.meta["request"]["temperature"] == 0.2  # ModelSettings travelled too
    assert step.meta["request"]["json_schema"]["title"] == "Reply"
    assert (step.meta["alias"], step.meta["version"]) == ("drafter", "production")
    assert step.output["output"] == VALID
    body = server.last_body(PRIMARY)
    assert "Answer again with only the corrected JSON" in body["messages"][-1]["content"]


async def test_exhausted_re_asks_fall_back_to_the_next_model(
    make_engine: EngineFactory,
    server: ScriptedServer,  # noqa: F811
) -> None:
    server.script(PRIMARY, default="wrong_schema")
    server.script(BACKUP, {"kind": "ok", "json": VALID})
    engine = await make_engine([graphs.draft_reply], registry=registry(server))
    handle = await engine.start(graphs.draft_reply, "I was charged twice")
    assert await handle.result(timeout=30) == {"subject": "Your refund", "model": BACKUP}
    assert (server.count(PRIMARY), server.count(BACKUP)) == (3, 1)  # one ask and reask=2

    step = model_step(await engine.describe(handle.id))
    assert (step.meta["served_by"], step.meta["fallback"]) == ("backup", "backup")
    attempts = step.meta["guard"]["attempts"]
    assert [(a["model"], a["error"] is None) for a in attempts] == [
        ("primary", False),
        ("primary", False),
        ("primary", False),
        ("backup", True),
    ]


async def test_a_violation_fails_the_run_and_the_failed_step_keeps_the_guard_log(
    make_engine: EngineFactory,
    server: ScriptedServer,  # noqa: F811
) -> None:
    server.script(PRIMARY, {"kind": "ok", "text": "We guarantee it works."})
    engine = await make_engine([graphs.draft_strictly], registry=registry(server))
    handle = await engine.start(graphs.draft_strictly, "Will it work?")
    with pytest.raises(bm.RunFailed) as failed:
        await handle.result(timeout=30)
    assert isinstance(failed.value.__cause__, bm.GuardViolation)
    assert server.count(BACKUP) == 0  # on_violation="raise": no fallback

    step = model_step(await engine.describe(handle.id))
    assert step.status == "failed"
    assert step.error is not None
    assert step.error["type"] == "bandmaster.errors.GuardViolation"
    [violation] = step.meta["guard"]["violations"]
    assert (violation["rule"], violation["direction"], violation["action"]) == (
        "banned_topics",
        "output",
        "raise",
    )
    assert violation["span"]["text"] == "guarantee"


async def test_a_custom_guard_with_to_config_runs_on_both_backends(
    make_engine: EngineFactory,
    server: ScriptedServer,  # noqa: F811
) -> None:
    server.script(PRIMARY, {"kind": "ok", "text": "Done."}, {"kind": "ok", "text": "Done?"})
    engine = await make_engine([graphs.custom_guarded], registry=registry(server))
    passed = await engine.start(graphs.custom_guarded, "hi", ".")
    assert await passed.result(timeout=30) == "Done."
    refused = await engine.start(graphs.custom_guarded, "hi", ".")
    with pytest.raises(bm.RunFailed) as failed:
        await refused.result(timeout=30)
    assert isinstance(failed.value.__cause__, bm.GuardViolation)
    assert "does not end with '.'" in str(failed.value.__cause__)


async def test_retry_breaker_and_fallback_objects_apply_as_on_the_embedded_engine(
    make_engine: EngineFactory,
) -> None:
    engine = await make_engine([graphs.retried_then_fallen_back], registry=wfs.registry())
    handle = await engine.start(graphs.retried_then_fallen_back, "hello")
    assert await handle.result(timeout=30) == "HELLO by shout"
    step = model_step(await engine.describe(handle.id))
    assert (step.name, step.status, step.attempts) == ("broken", "completed", 3)  # 2 tries, then the fallback
    assert step.meta["fallback"] == "shout"
    assert step.meta["breakers"] == {"broken": "closed", "shout": "closed"}
    assert [e.split(":")[0] for e in step.meta["attempt_errors"]] == ["ProviderUnavailable"] * 2
