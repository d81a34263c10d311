"""``bandmaster approvals`` on the Temporal backend: the CLI as a real subprocess against a real
dev server, with the workflows hosted by an in-process worker."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("temporalio", reason="the Temporal backend needs: pip install 'bandmaster[temporal]'")
import wf_tserver as wfs
from temporal_support import TemporalServer

import bandmaster as bm

pytestmark = pytest.mark.timeout(120)

MODULE = str(Path(wfs.__file__).resolve())
TICKET = wfs.Ticket(id="T-1", text="I was charged twice")
RAW = "Mrs. Garcia asked for a call"


@dataclass
class Outcome:
    code: int
    out: str
    err: str


@dataclass
class Cluster:
    engine: bm.TemporalEngine
    env: dict[str, str]

    async def cli(self, *args: str, env: dict[str, str] | None = None) -> Outcome:
        # Not subprocess.run: the worker in this event loop must keep running the decisions.
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bandmaster.cli",
            "approvals",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env if env is not None else self.env,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert proc.returncode is not None
        # Rich wraps long lines at the terminal width: compare messages with whitespace collapsed.
        return Outcome(proc.returncode, out.decode(), " ".join(err.decode().split()))

    async def pending(self, run_id: str, name: str | None = None) -> list[dict[str, Any]]:
        """The run's pending approvals as `approvals list --json` prints them, once there are some."""
        for _ in range(100):
            listed = await self.cli("list", "--json", "--limit", "1000")
            assert listed.code == 0, listed.err
            found = [a for a in json.loads(listed.out) if a["run_id"] == run_id]
            if found and (name is None or found[0]["name"] == name):
                return found
            await asyncio.sleep(0.1)
        raise AssertionError(f"`bandmaster approvals list` never showed a pending approval of {run_id}")


@pytest.fixture
async def cluster(temporal_server: TemporalServer) -> AsyncIterator[Cluster]:
    queue = f"cli-appr-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANDMASTER_")}
    env.update(
        BANDMASTER_BACKEND="temporal",
        BANDMASTER_TEMPORAL_TARGET=temporal_server.target,
        BANDMASTER_TEMPORAL_TASK_QUEUE=queue,
        USER="alice",
        COLUMNS="200",  # room for the run id in `list`'s table
    )
    async with bm.TemporalEngine(
        temporal_server.target, task_queue=queue, workflows=[wfs.reviewed, wfs.two_reviews]
    ) as engine:
        yield Cluster(engine, env)


async def history_bytes(engine: bm.TemporalEngine, run_id: str) -> bytes:
    history = await engine.client.get_workflow_handle(run_id).fetch_history()
    # Binary protobuf: payloads appear as their raw JSON bytes (to_json() would base64 them).
    return b"".join(event.SerializeToString() for event in history.events)


async def test_list_refusals_and_a_redacted_comment_through_the_cli(cluster: Cluster) -> None:
    handle = await cluster.engine.start(wfs.reviewed, TICKET)
    [pending] = await cluster.pending(handle.id)
    assert (pending["name"], pending["workflow"], pending["status"]) == ("phi_review", "reviewed", "pending")
    assert pending["approvers"] == ["alice", "carol"]
    table = await cluster.cli("list")
    assert table.code == 0
    assert handle.id in table.out
    assert "phi_review" in table.out

    refused = await cluster.cli("approve", handle.id, "--by", "mallory")
    assert refused.code == 1, refused
    assert "'mallory' may not decide approval 'phi_review'" in refused.err

    unsafe = await cluster.cli("override", handle.id, "--by", "alice", "--comment", RAW)
    assert unsafe.code == 2, unsafe
    assert "--module" in unsafe.err
    assert "without a comment" in unsafe.err
    assert RAW.encode() not in await history_bytes(cluster.engine, handle.id)
    still = await cluster.pending(handle.id)  # neither attempt decided anything
    assert still[0]["status"] == "pending"
    assert still[0]["decision"] is None
    assert (await cluster.engine.describe(handle.id)).status == "waiting"

    decided = await cluster.cli("override", handle.id, "--comment", RAW, "--module", MODULE)  # --by: $USER
    assert decided.code == 0, decided
    assert f"run {handle.id}: override by alice" in decided.out
    result = await handle.result(timeout=30)
    assert result == {
        "action": "override",
        "by": "alice",
        "comment": "<PERSON> asked for a call",
        "timed_out": False,
    }

    # `show` with the backend given as options instead of the environment.
    options_only = {k: v for k, v in cluster.env.items() if not k.startswith("BANDMASTER_")}
    shown = await cluster.cli(
        "show",
        handle.id,
        "--json",
        "--backend",
        "temporal",
        "--target",
        cluster.env["BANDMASTER_TEMPORAL_TARGET"],
        "--task-queue",
        cluster.env["BANDMASTER_TEMPORAL_TASK_QUEUE"],
        env=options_only,
    )
    assert shown.code == 0, shown
    approval = json.loads(shown.out)
    assert approval["status"] == "decided"
    assert approval["decision"]["comment"] == "<PERSON> asked for a call"
    history = await history_bytes(cluster.engine, handle.id)
    assert b"<PERSON> asked for a call" in history  # the decision is there, redacted
    assert RAW.encode() not in history
    assert b"Garcia" not in history

    late = await cluster.cli("approve", handle.id, "--by", "carol")
    assert late.code == 1  # as on the embedded engine: the decision that stands is named
    assert "was already decided" in late.err


async def test_a_run_without_redactor_takes_a_comment_and_a_second_decision_is_refused(
    cluster: Cluster,
) -> None:
    handle = await cluster.engine.start(wfs.two_reviews)
    await cluster.pending(handle.id)
    # two_reviews has no redactor (its approval memo says so): no module needed for a comment.
    first = await cluster.cli(
        "approve", handle.id, "--name", "legal", "--by", "bob", "--comment", "fine", "--json"
    )
    assert first.code == 0, first
    assert json.loads(first.out)["comment"] == "fine"
    again = await cluster.cli("override", handle.id, "--name", "legal", "--by", "eve")
    assert again.code == 1, again
    assert "already decided: 'approve' by 'bob'" in again.err
    await cluster.pending(handle.id, name="medical")
    second = await cluster.cli("decide", handle.id, "hold", "--by", "bob")
    assert second.code == 0, second
    assert await handle.result(timeout=30) == ["approve", "hold"]


async def test_mistakes_exit_2_with_what_to_do(cluster: Cluster) -> None:
    missing = await cluster.cli("approve", "no-such-run", "--by", "alice")
    assert missing.code == 2
    assert "run 'no-such-run' has no approval" in missing.err
    bad_module = await cluster.cli("approve", "no-such-run", "--module", "no_such_module_xyz")
    assert bad_module.code == 2
    assert "cannot import module 'no_such_module_xyz'" in bad_module.err
    audit = await cluster.cli("audit")
    assert audit.code == 2
    assert "approval_audit is not available on the temporal backend" in audit.err
    unknown = await cluster.cli("list", env={**cluster.env, "BANDMASTER_BACKEND": "kafka"})
    assert unknown.code == 2
    assert "backend 'kafka' is unknown" in unknown.err
