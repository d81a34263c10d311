"""``bandmaster runs show`` (a real subprocess) lists a guarded call's attempts and violations."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from guarded_models import BACKUP, PRIMARY
from tests.extras import needs

import bandmaster as bm
from models.helpers import ScriptedServer, bandmaster_exe, subprocess_env

pytestmark = needs("guard", "jsonschema")  # the guarded call validates against a JSON Schema dict


@bm.workflow
async def guarded(text: str) -> str:
    response = await bm.call_model(
        "extractor",
        text,
        fallback=["backup"],
        retry=bm.Retry(attempts=1),
        guard=[
            bm.BannedTopics(["insider trading"]),
            bm.JsonSchema({"type": "object", "required": ["risk"]}, reask=1),
        ],
    )
    return str(response.output["risk"])


def show(db_path: Path, run_id: str) -> str:
    done = subprocess.run(
        [bandmaster_exe(), "runs", "show", run_id, "--db", str(db_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env(),
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_runs_show_lists_re_asks_and_the_model_that_answered(
    db_path: Path, registry: bm.Registry, server: ScriptedServer
) -> None:
    server.script(PRIMARY, {"kind": "ok", "text": "Risk: low."}, "wrong_schema")
    server.script(BACKUP, {"kind": "ok", "json": {"risk": "low"}})
    async with bm.Engine(db_path, workflows=[guarded], registry=registry, poll_interval=0.02) as engine:
        handle = await engine.start(guarded, "assess")
        assert await handle.result(timeout=30) == "low"
    lines = show(db_path, handle.id).splitlines()
    start = lines.index("guard, seq 1 (extractor): 3 attempt(s)")
    assert lines[start + 1].startswith(
        "  primary #1: model 'primary' was asked for JSON but answered 'Risk: low.'"
    )
    assert (
        lines[start + 2]
        == "  primary #2: the JSON does not match the schema: $: 'risk' is a required property"
    )
    assert lines[start + 3] == "  backup #1: ok"


async def test_runs_show_lists_a_violation_with_its_span(
    db_path: Path, registry: bm.Registry, server: ScriptedServer
) -> None:
    async with bm.Engine(db_path, workflows=[guarded], registry=registry, poll_interval=0.02) as engine:
        handle = await engine.start(guarded, "about insider trading")
        with pytest.raises(bm.RunFailed):
            await handle.result(timeout=30)
    out = show(db_path, handle.id)
    assert "guard, seq 1 (extractor): 0 attempt(s)" in out
    assert (
        "  violation: banned_topics (input, raise) at 6..21 'insider trading': "
        "mentions the banned topic 'insider trading'" in out
    )
