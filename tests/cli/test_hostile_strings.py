"""Every command prints users' text exactly as it was given, whole, off a TTY.

The journal here holds runs whose workflow and step names, inputs, outputs, errors, approval
names, payloads and comments contain Rich markup (``[/etc/app]`` once crashed ``runs show``
with ``MarkupError``), link markup, ``:emoji:`` codes, ANSI escapes, format specs and values
longer than any terminal. The commands run in-process on that journal (stdout and stderr are
not TTYs, as in a pipe or CI), and each check is that the exact text comes back.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import bandmaster as bm
from bandmaster.cli import app
from bandmaster.cli._loader import import_module

WF = Path(__file__).resolve().parent / "wf_hostile.py"
wf = import_module(str(WF))
HOSTILE: str = wf.HOSTILE
LONG: str = wf.LONG


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return result


async def _until_waiting(engine: bm.Engine, run_id: str) -> None:
    while (await engine.describe(run_id)).status != "waiting":  # noqa: ASYNC110  the journal is the only signal
        await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    db = tmp_path_factory.mktemp("hostile [ship]") / "journal.db"

    async def populate() -> dict[str, Any]:
        workflows = [wf.hostile, wf.crash, wf.reviewed, wf.signalled]
        async with bm.Engine(db, workflows=workflows) as engine:
            done = await engine.start(wf.hostile, HOSTILE)
            await done.result(timeout=10)
            failed = await engine.start(wf.crash, HOSTILE)
            with pytest.raises(bm.RunFailed):
                await failed.result(timeout=10)
            review = await engine.start(wf.reviewed, HOSTILE)
            waiting = await engine.start(wf.signalled, HOSTILE)
            await asyncio.wait_for(_until_waiting(engine, review.id), 10)
            await asyncio.wait_for(_until_waiting(engine, waiting.id), 10)
        return {"db": db, "done": done.id, "failed": failed.id, "review": review.id, "waiting": waiting.id}

    return asyncio.run(populate())


def test_runs_list_prints_names_and_full_ids_verbatim(journal: dict[str, Any]) -> None:
    out = ok(invoke("runs", "list", "--db", journal["db"])).stdout
    for name in ("wf [bold]x[/] :smile:", "fails [/etc/app]", "waits [ship]", "signalled [link=x]"):
        assert name in out
    for key in ("done", "failed", "review", "waiting"):
        assert journal[key] in out  # whole: pasting it into `runs show` works
    assert "…" not in out


def test_runs_show_of_a_failed_run_with_markup_in_its_error(journal: dict[str, Any]) -> None:
    result = ok(invoke("runs", "show", journal["failed"], "--db", journal["db"]))
    lines = result.stdout.splitlines()
    assert f"error: builtins.ValueError: {HOSTILE} {LONG}" in lines  # one line, not wrapped or cut
    assert any("boom [/etc/app]" in line and f"{HOSTILE} {LONG}" in line for line in lines)
    assert json.dumps([HOSTILE], ensure_ascii=False) in result.stdout


def test_runs_show_prints_the_whole_output(journal: dict[str, Any]) -> None:
    out = ok(invoke("runs", "show", journal["done"], "--db", journal["db"])).stdout
    assert f"output: {json.dumps({'said': HOSTILE, 'long': LONG}, ensure_ascii=False)}" in out.splitlines()
    assert "echo [bold]step[/]" in out
    shown = json.loads(ok(invoke("runs", "show", journal["done"], "--db", journal["db"], "--json")).stdout)
    assert shown["output"] == {"said": HOSTILE, "long": LONG}
    listed = json.loads(ok(invoke("runs", "list", "--db", journal["db"], "--json")).stdout)
    assert {r["workflow"] for r in listed} >= {"wf [bold]x[/] :smile:", "fails [/etc/app]"}


def test_runs_show_says_what_a_run_waits_for_and_how_to_send_it(journal: dict[str, Any]) -> None:
    db, run_id = journal["db"], journal["waiting"]
    out = ok(invoke("runs", "show", run_id, "--db", db)).stdout
    assert f"run {run_id} is waiting for signal 'go [/etc/app]': send it with" in out
    assert f"bandmaster signal {run_id} 'go [/etc/app]' 'JSON' --db '{db}'" in out
    review = ok(invoke("runs", "show", journal["review"], "--db", db)).stdout
    assert "is waiting for approval 'review [/etc/app] :smile:'" in review
    assert f"bandmaster approvals approve {journal['review']} --name 'review [/etc/app] :smile:'" in review


def test_signal_with_a_hostile_name_and_payload(journal: dict[str, Any]) -> None:
    name = "other [bold]signal[/] :smile:"
    result = ok(invoke("signal", journal["waiting"], name, json.dumps(HOSTILE), "--db", journal["db"]))
    assert f"signal {name!r} sent to {journal['waiting']}" in result.stdout
    # Nobody waits for it: the run waits for 'go [/etc/app]'.
    assert f"warning: run {journal['waiting']} is not waiting for signal {name!r}" in result.stderr


def test_approvals_list_show_decide_and_audit(journal: dict[str, Any]) -> None:
    db, run_id = journal["db"], journal["review"]
    listed = ok(invoke("approvals", "list", "--db", db)).stdout
    row = next(line for line in listed.splitlines() if run_id in line)
    for cell in (
        "review [/etc/app] :smile:",
        "waits [ship]",
        json.dumps({"text": HOSTILE}, ensure_ascii=False),
    ):
        assert cell in row
    shown = ok(invoke("approvals", "show", run_id, "--db", db)).stdout
    assert f"run {run_id}  waits [ship]  approval 'review [/etc/app] :smile:'" in shown
    decided = ok(
        invoke("approvals", "override", run_id, "--by", "[red]eve[/]", "--comment", HOSTILE, "--db", db)
    )
    assert decided.stdout.strip() == f"run {run_id}: override by [red]eve[/]"
    audit = ok(invoke("approvals", "audit", run_id, "--db", db)).stdout
    assert any("[red]eve[/]" in line and HOSTILE in line for line in audit.splitlines())


def test_stats_export_and_replay_keep_names(journal: dict[str, Any], tmp_path: Path) -> None:
    db = journal["db"]
    stats = ok(invoke("stats", "--db", db, "--exact")).stdout
    for name in ("echo [bold]step[/]", "boom [/etc/app]", "wf [bold]x[/] :smile:", "fails [/etc/app]"):
        assert name in stats
    assert f"{db}: " in stats
    target = tmp_path / "[ship] :smile:" / "runs.jsonl"
    target.parent.mkdir()
    exported = ok(invoke("export", "--db", db, "--to", target)).stdout
    assert exported.strip() == f"exported 4 runs to {target}"
    replayed = ok(invoke("replay", f"{WF}:hostile", "--db", db)).stdout
    assert "replayed 1 runs of wf [bold]x[/] :smile:" in replayed
    copy = target.parent / "copy [/etc/app].db"
    imported = ok(invoke("import", target, "--db", copy)).stdout
    assert imported.strip() == "imported 4 runs, skipped 0 already present"


def test_run_and_start_with_hostile_input(journal: dict[str, Any], tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    result = ok(invoke("run", f"{WF}:hostile", "--input", json.dumps(HOSTILE), "--db", db))
    assert json.loads(result.stdout) == {"said": HOSTILE, "long": LONG}
    assert "(wf [bold]x[/] :smile:) started" in result.stderr
    failed = invoke("run", f"{WF}:crash", "--input", json.dumps(HOSTILE), "--db", db)
    assert failed.exit_code == 1
    assert f"failed: builtins.ValueError: {HOSTILE} {LONG}" in failed.stderr.splitlines()[-1]
    queued = ok(invoke("start", f"{WF}:hostile", "--input", json.dumps(HOSTILE), "--db", db))
    shown = json.loads(ok(invoke("runs", "show", queued.stdout.strip(), "--db", db, "--json")).stdout)
    assert (shown["status"], shown["input"]) == ("queued", [HOSTILE])


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "show", HOSTILE],
        ["signal", HOSTILE, "go", "1"],
        ["cancel", HOSTILE],
        ["approvals", "show", HOSTILE],
        ["graph", f"{HOSTILE}.yaml"],
        ["run", f"{HOSTILE}/x.py:wf", "--input", "1"],
        ["worker", f"{HOSTILE}.py"],
    ],
    ids=["runs-show", "signal", "cancel", "approvals-show", "graph", "run", "worker"],
)
def test_errors_quote_user_text_verbatim_on_one_line(journal: dict[str, Any], args: list[str]) -> None:
    result = invoke(*args, "--db", journal["db"]) if args[0] != "graph" else invoke(*args)
    assert result.exit_code == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    line = lines[0]
    assert len(lines) == 1 or args[0] == "graph"  # graph adds a count line under its problems
    assert line.startswith("error: ")
    assert HOSTILE in line or repr(HOSTILE) in line


def test_models_and_tokens_print_names_verbatim(tmp_path: Path) -> None:
    models = tmp_path / "models.yaml"
    models.write_text(
        "models:\n"
        "  '[ship]': {provider: callable, function: 'tests.models.fixtures_models:model_a'}\n"
        "aliases:\n"
        "  ':smile: [bold]x[/]':\n"
        "    versions: {production: '[ship]'}\n"
    )
    db = tmp_path / "j.db"
    listed = ok(invoke("models", "list", "--models", models, "--db", db)).stdout
    row = next(line for line in listed.splitlines() if ":smile: [bold]x[/]" in line)
    assert "[ship]" in row
    shown = json.loads(
        ok(invoke("models", "show", ":smile: [bold]x[/]", "--models", models, "--db", db)).stdout
    )
    assert (shown["alias"], shown["versions"]) == (":smile: [bold]x[/]", {"production": "[ship]"})
    created = ok(invoke("tokens", "create", "[bold]ops[/] :smile:", "--scope", "admin", "--db", db))
    assert "for '[bold]ops[/] :smile:' (admin)" in created.stderr
    assert "[bold]ops[/] :smile:" in ok(invoke("tokens", "list", "--db", db)).stdout


def test_guard_notes_keep_a_long_attempt_error_whole_off_a_tty() -> None:
    from datetime import UTC, datetime

    from bandmaster.cli._guard_notes import guard_notes
    from bandmaster.engine._runtime import StepInfo

    attempts = [{"model": "[ship]", "attempt": 1, "error": f"{HOSTILE} {LONG}"}, {"model": "b", "attempt": 2}]
    step = StepInfo(
        seq=1,
        name="extract",
        kind="model",
        status="completed",
        attempts=2,
        started_at=datetime.now(UTC),
        ended_at=None,
        duration=None,
        meta={"guard": {"attempts": attempts}},
    )
    assert guard_notes([step])[1] == f"  [ship] #1: {HOSTILE} {LONG}"


def test_pii_scan_prints_the_redacted_text_verbatim() -> None:
    pytest.importorskip("presidio_analyzer", reason="the pii extra")
    result = ok(invoke("pii", "scan", f"{HOSTILE} call 555-867-5309"))
    assert result.stdout == f"{HOSTILE} call <PHONE_NUMBER>\n"
    assert "PHONE_NUMBER" in result.stderr
