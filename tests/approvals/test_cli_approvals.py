"""``bandmaster approvals`` as a real subprocess against the journal a live engine uses."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import StatusWaiter

import bandmaster as bm


@bm.workflow
async def wf_cli_review(ticket: str) -> str:
    decision = await bm.approval(
        "phi_review", {"ticket": ticket}, timeout=60, default="approve", approvers=["alice", "bob"]
    )
    return f"{decision.action} by {decision.by}: {decision.comment}"


async def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "bandmaster"
    env = {k: v for k, v in os.environ.items() if k != "BANDMASTER_DB"}
    env.update(COLUMNS="200", NO_COLOR="1")
    return await asyncio.to_thread(
        subprocess.run, [str(exe), *map(str, args)], capture_output=True, text=True, timeout=60, env=env
    )


async def test_list_approve_and_override_from_the_cli(
    engine: bm.Engine, db_path: Path, until_status: StatusWaiter
) -> None:
    first = await engine.start(wf_cli_review, "T-1")
    second = await engine.start(wf_cli_review, "T-2")
    await until_status(engine, first.id, "waiting")
    await until_status(engine, second.id, "waiting")

    listed = await _cli("approvals", "list", "--db", db_path, "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert {(r["run_id"], r["name"], r["status"]) for r in rows} == {
        (first.id, "phi_review", "pending"),
        (second.id, "phi_review", "pending"),
    }
    table = await _cli("approvals", "list", "--db", db_path)
    assert first.id in table.stdout
    assert "phi_review" in table.stdout

    approved = await _cli(
        "approvals", "approve", first.id, "--name", "phi_review", "--by", "alice", "--comment", "fine",
        "--db", db_path,
    )  # fmt: skip
    assert approved.returncode == 0, approved.stderr
    assert await first.result(timeout=15) == "approve by alice: fine"

    again = await _cli("approvals", "override", first.id, "--by", "bob", "--db", db_path)
    assert again.returncode == 1
    assert "already decided: 'approve' by 'alice'" in " ".join(again.stderr.split())

    refused = await _cli("approvals", "override", second.id, "--by", "mallory", "--db", db_path)
    assert refused.returncode == 1
    assert "'mallory' may not decide" in " ".join(refused.stderr.split())
    assert (await engine.describe(second.id)).status == "waiting"

    overridden = await _cli(
        "approvals", "override", second.id, "--by", "bob", "--comment", "unusable", "--db", db_path, "--json"
    )
    assert overridden.returncode == 0, overridden.stderr
    assert json.loads(overridden.stdout)["action"] == "override"
    assert await second.result(timeout=15) == "override by bob: unusable"

    audit = await _cli("approvals", "audit", "--db", db_path, "--json")
    events = [(e["who"], e["event"]) for e in json.loads(audit.stdout)]
    assert events == [("alice", "decided"), ("bob", "too_late"), ("mallory", "refused"), ("bob", "decided")]
    decided = json.loads(
        (await _cli("approvals", "list", "--status", "decided", "--db", db_path, "--json")).stdout
    )
    assert len(decided) == 2


async def test_cli_usage_errors(db_path: Path) -> None:
    missing = await _cli("approvals", "approve", "no-such-run", "--by", "alice", "--db", db_path)
    assert missing.returncode == 2
    assert "has no approval" in missing.stderr
    bad = await _cli("approvals", "list", "--status", "maybe", "--db", db_path)
    assert bad.returncode == 2


async def test_show_prints_the_pending_approval_then_its_decision(
    engine: bm.Engine, db_path: Path, until_status: StatusWaiter
) -> None:
    handle = await engine.start(wf_cli_review, "T-9")
    await until_status(engine, handle.id, "waiting")
    pending = await _cli("approvals", "show", handle.id, "--db", db_path)
    assert pending.returncode == 0, pending.stderr
    assert f"run {handle.id}  wf_cli_review  approval 'phi_review' (seq 1): pending" in pending.stdout
    assert "approvers: alice, bob" in pending.stdout
    await engine.approvals.approve(handle.id, by="bob", comment="ok")
    shown = await _cli("approvals", "show", handle.id, "--db", db_path, "--json")
    assert shown.returncode == 0, shown.stderr
    decision = json.loads(shown.stdout)["decision"]
    assert (decision["action"], decision["by"], decision["comment"]) == ("approve", "bob", "ok")
    missing = await _cli("approvals", "show", "no-such-run", "--db", db_path)
    assert missing.returncode == 2
    assert "has no approval" in missing.stderr
