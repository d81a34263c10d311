"""The replay harness over recorded triage runs: unchanged code changes nothing and calls no
model; a changed routing threshold is reported for exactly the runs it flips; golden labels
are scored; live models report answer and cost differences; bad input fails clearly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path

import pytest

import bandmaster as bm
from bandmaster.replay import RunQuery, replay_runs
from bandmaster.testing import ScriptedModel, temp_engine

from . import wf_triage
from .conftest import GOLDEN, INTENT_COST, TICKETS, Recorded, intent_model


async def test_unchanged_code_reports_no_change_and_calls_no_model(recorded: Recorded) -> None:
    before = recorded.rows()
    calls_before = recorded.model.calls

    report = await replay_runs(wf_triage.triage, db=recorded.db)

    assert len(report.runs) == len(TICKETS)
    report.assert_no_changes()
    assert report.model_calls_made == 0
    assert recorded.model.calls == calls_before  # the recorded answers served every call
    assert all(run.status == "completed" and run.output == run.recorded_output for run in report.runs)
    assert recorded.rows() == before  # the source journal was not written


async def test_raised_threshold_reports_exactly_the_flipped_runs(
    recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wf_triage, "THRESHOLD", 0.9)  # the "deploy": a stricter router

    report = await replay_runs(wf_triage.triage, db=recorded.db)

    # 0.8 <= confidence < 0.9 and not "other": these now go to a human.
    flipped = recorded.ids("T-02", "T-03", "T-05", "T-11")
    report.assert_changed(flipped)
    for run in report.changed:
        assert [r.route for r in run.recorded_routes] == ["auto_reply"]
        assert [r.route for r in run.routes] == ["human"]
        assert "routes" in run.changes
        # The new branch calls a step the recording never made: a divergence, not a crash.
        assert run.status == "diverged"
        assert run.divergence is not None
        assert (run.divergence.kind, run.divergence.name) == ("step", "escalate")
        assert run.unused == ["step:send_reply"]
    with pytest.raises(AssertionError, match="escalate"):
        report.assert_no_changes()


async def test_lowered_threshold_diverges_at_the_reply_step(
    recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wf_triage, "THRESHOLD", 0.6)

    report = await replay_runs(wf_triage.triage, db=recorded.db)

    assert set(report.changed_ids) == recorded.ids("T-06", "T-08")  # 0.79 and 0.65
    assert {run.divergence.name for run in report.changed if run.divergence} == {"send_reply"}
    assert report.exceeds(1)
    assert not report.exceeds(2)
    assert report.exceeds(0.1)  # 2 of 12 = 0.167
    assert not report.exceeds(0.2)


async def test_run_query_selects_runs(recorded: Recorded) -> None:
    two = [recorded.run_ids["T-01"], recorded.run_ids["T-02"]]
    assert {r.run_id for r in (await replay_runs(wf_triage.triage, db=recorded.db, runs=two)).runs} == set(
        two
    )
    limited = await replay_runs(wf_triage.triage, db=recorded.db, runs="status=completed since=1h limit=5")
    assert [r.run_id for r in limited.runs] == [recorded.run_ids[t] for t, *_ in TICKETS[-5:]]
    assert (
        await replay_runs(wf_triage.triage, db=recorded.db, runs=RunQuery(statuses=["failed"]))
    ).runs == []
    future = await replay_runs(wf_triage.triage, db=recorded.db, runs="until=1h")
    assert future.runs == []


async def test_golden_labels_accuracy_and_confusion(
    recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    labels = [{"key": ticket, "label": label} for ticket, label in GOLDEN.items()]

    report = await replay_runs(
        wf_triage.triage, db=recorded.db, golden=labels, golden_key="ticket.id", decision="route"
    )
    golden = report.golden
    assert golden is not None
    assert (golden.labelled, golden.correct) == (12, 10)  # T-03 and T-11 replied, should not have
    assert golden.confusion == {"auto_reply": {"auto_reply": 5}, "human": {"auto_reply": 2, "human": 5}}
    report.assert_accuracy(at_least=0.8)
    with pytest.raises(AssertionError, match=r"accuracy 0\.833"):
        report.assert_accuracy(at_least=0.9)

    monkeypatch.setattr(wf_triage, "THRESHOLD", 0.83)  # the fix: T-03 (0.82) and T-11 (0.80) go to a human
    fixed = await replay_runs(
        wf_triage.triage,
        db=recorded.db,
        golden=labels,
        golden_key="ticket.id",
        decision="route:triage_router",
    )
    assert fixed.golden is not None
    assert (fixed.golden.correct, fixed.golden.recorded_correct) == (12, 10)
    assert fixed.golden.confusion == {"auto_reply": {"auto_reply": 5}, "human": {"human": 7}}
    assert set(fixed.changed_ids) == recorded.ids("T-03", "T-11")


async def test_golden_file_by_run_id(recorded: Recorded, tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    lines = [{"run_id": recorded.run_ids[t], "label": GOLDEN[t]} for t in ("T-01", "T-03")]
    lines.append({"run_id": "no-such-run", "label": "human"})
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")

    report = await replay_runs(wf_triage.triage, db=recorded.db, golden=path)

    assert report.golden is not None
    assert (report.golden.labelled, report.golden.correct) == (2, 1)
    assert (report.golden.unlabelled_runs, report.golden.unmatched_labels) == (10, 1)


async def test_live_models_report_answer_and_cost_deltas(recorded: Recorded) -> None:
    # Today's intent model: 5x the price, and less sure about one billing ticket.
    today = intent_model(cost=5 * INTENT_COST, overrides={"refund my last invoice": ("billing", 0.7)})
    registry = bm.Registry(models={"intent": today})

    report = await replay_runs(wf_triage.triage, db=recorded.db, live_models=True, registry=registry)

    assert today.calls == len(TICKETS) == report.model_calls_made
    assert report.recorded_cost == pytest.approx(len(TICKETS) * INTENT_COST)
    assert report.cost == pytest.approx(len(TICKETS) * 5 * INTENT_COST)
    assert report.cost_delta == pytest.approx(len(TICKETS) * 4 * INTENT_COST)
    assert report.changed_ids == [recorded.run_ids["T-02"]]  # 0.7 < 0.8: routed to a human now
    changed = report.changed[0]
    assert changed.cost_delta == pytest.approx(4 * INTENT_COST)
    assert changed.divergence is not None
    assert changed.divergence.name == "escalate"


async def test_live_model_with_other_answers_changes_outputs(recorded: Recorded) -> None:
    today = intent_model(overrides={"where is my parcel": ("delivery", 0.93)})
    report = await replay_runs(
        wf_triage.triage, db=recorded.db, live_models=True, registry=bm.Registry(models={"intent": today})
    )
    (changed,) = report.changed
    assert changed.run_id == recorded.run_ids["T-04"]
    assert changed.changes == ["model_outputs"]  # same route, same steps, same output
    assert [(c.recorded_output, c.live_output) for c in changed.model_calls] == [("shipping", "delivery")]
    assert report.cost_delta == pytest.approx(0.0)


async def test_divergence_caught_by_the_workflow_is_still_reported(
    recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    @bm.step
    async def audit(ticket_id: str) -> str:
        return ticket_id

    original = wf_triage.triage.fn

    async def tolerant(ticket: wf_triage.Ticket) -> str:
        with contextlib.suppress(Exception):
            await audit(ticket.id)  # new code: a step the recording never saw
        return await original(ticket)

    monkeypatch.setattr(wf_triage.triage, "fn", tolerant)
    report = await replay_runs(wf_triage.triage, db=recorded.db, runs=[recorded.run_ids["T-01"]])
    (run,) = report.runs
    assert run.status == "diverged"
    assert run.divergence is not None
    assert run.divergence.name == "audit"
    assert run.changes == ["steps", "diverged"]


async def test_bad_input_fails_with_a_specific_error(recorded: Recorded, tmp_path: Path) -> None:
    with pytest.raises(bm.ReplayError, match="no journal at"):
        await replay_runs(wf_triage.triage, db=tmp_path / "missing.db")
    with pytest.raises(bm.ReplayError, match="unknown key 'colour'"):
        await replay_runs(wf_triage.triage, db=recorded.db, runs="colour=red")
    with pytest.raises(bm.ReplayError, match="not a duration"):
        await replay_runs(wf_triage.triage, db=recorded.db, runs="since=yesterday")
    with pytest.raises(bm.ReplayError, match="with id nope"):
        await replay_runs(wf_triage.triage, db=recorded.db, runs=["nope"])
    bad = tmp_path / "labels.jsonl"
    bad.write_text('{"run_id": "x", "label": "human"}\n{oops\n')
    with pytest.raises(bm.ReplayError, match=r"labels.jsonl:2 is not valid JSON"):
        await replay_runs(wf_triage.triage, db=recorded.db, golden=bad)
    with pytest.raises(bm.ReplayError, match="decision 'verdict'"):
        await replay_runs(wf_triage.triage, db=recorded.db, decision="verdict")
    with pytest.raises(bm.ReplayError, match="must not be the source"):
        await replay_runs(wf_triage.triage, db=recorded.db, scratch=recorded.db)
    not_journal = tmp_path / "other.db"
    not_journal.write_bytes(b"")
    with pytest.raises(bm.ReplayError, match="not a bandmaster journal"):
        await replay_runs(wf_triage.triage, db=not_journal)


@bm.step
async def charge(amount: int) -> int:
    if amount > 100:
        raise bm.InvalidRequest(f"amount {amount} is over the limit")
    return amount


@bm.workflow
async def payment(amount: int) -> int:
    return await charge(amount)


async def test_failed_runs_replay_with_their_recorded_error(tmp_path: Path) -> None:
    db = tmp_path / "payments.db"
    async with temp_engine([payment], db=db) as engine:
        for amount in (5, 500):
            handle = await engine.start(payment, amount)
            with contextlib.suppress(bm.RunFailed):
                await handle.result(timeout=10)

    report = await replay_runs(payment, db=db)

    report.assert_no_changes()
    assert sorted((run.recorded_status, run.status) for run in report.runs) == [
        ("completed", "completed"),
        ("failed", "failed"),
    ]
    failed = next(run for run in report.runs if run.status == "failed")
    assert failed.error == failed.recorded_error == "InvalidRequest: amount 500 is over the limit"


@bm.workflow
async def approval(amount: int) -> str:
    await charge(amount)
    return await bm.wait_for("approve", timeout=600, default="timed out")


async def test_a_run_still_waiting_replays_up_to_its_wait(tmp_path: Path) -> None:
    db = tmp_path / "approvals.db"
    async with temp_engine([approval], db=db) as engine:
        done = await engine.start(approval, 1)
        await done.signal("approve", "yes")
        assert await done.result(timeout=10) == "yes"
        waiting = await engine.start(approval, 2)
        for _ in range(500):
            if (await waiting.describe()).status == "waiting":
                break
            await asyncio.sleep(0.01)

    report = await replay_runs(approval, db=db, runs="status=completed|waiting")

    report.assert_no_changes()
    statuses = {run.run_id: (run.recorded_status, run.status) for run in report.runs}
    assert statuses == {done.id: ("completed", "completed"), waiting.id: ("waiting", "waiting")}
    assert next(r for r in report.runs if r.run_id == done.id).output == "yes"


PROMPT = "Summarise: {}"
REVERSED = False


@bm.workflow
async def summaries(parts: list[str]) -> dict[str, str]:
    order = list(reversed(parts)) if REVERSED else parts
    answers = {}
    for part in order:
        answers[part] = (await bm.call_model("writer", PROMPT.format(part))).output
    return answers


async def test_model_calls_fall_back_to_matching_by_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "summaries.db"
    writer = ScriptedModel(lambda req: f"summary of {req.text()}", name="writer")
    async with temp_engine([summaries], registry=bm.Registry(models={"writer": writer}), db=db) as engine:
        recorded = await (await engine.start(summaries, ["a", "b", "c"])).result(timeout=10)

    # New code asks the same questions in another order: each gets its own recorded answer.
    monkeypatch.setattr(sys.modules[__name__], "REVERSED", True)
    report = await replay_runs(summaries, db=db)
    (run,) = report.runs
    assert run.output == recorded
    assert run.changes == []  # the same questions and answers; dict order is not compared as a change
    assert writer.calls == 3

    # A changed prompt: the recorded answer is all there is, and the run is flagged.
    monkeypatch.setattr(sys.modules[__name__], "REVERSED", False)
    monkeypatch.setattr(sys.modules[__name__], "PROMPT", "Summarise briefly: {}")
    (run,) = (await replay_runs(summaries, db=db)).runs
    assert run.changes == ["model_inputs"]
    assert run.new_model_inputs == ["writer", "writer", "writer"]
    assert run.output == recorded
