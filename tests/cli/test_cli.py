"""The ``bandmaster`` command line, run as a real subprocess (the installed console script).

Exit codes under test: 0 success, 1 a run failed or was cancelled, 2 usage or input error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import bandmaster as bm
from bandmaster.cli._loader import import_module

WF = Path(__file__).resolve().parent / "wf_cli.py"
TIMEOUT = 60


def _exe() -> str:
    candidate = Path(sys.executable).parent / "bandmaster"
    return str(candidate) if candidate.exists() else "bandmaster"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "BANDMASTER_DB"}
    env["COLUMNS"] = "200"  # rich tables and messages on one line each
    env["NO_COLOR"] = "1"
    return env


Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """``cli("run", ...)``: run ``bandmaster`` in tmp_path (so a missing --db can never touch
    the repository) and return the finished process."""

    def invoke(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [_exe(), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            cwd=tmp_path,
            env=_env(),
        )

    return invoke


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "journal.db"


@pytest.fixture
def background(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start ``bandmaster`` in the background; whatever is still running is killed at teardown."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str | Path) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [_exe(), *map(str, args)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env=_env(),
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=15)


def one_line(text: str) -> str:
    """Rich may wrap long messages; compare with whitespace collapsed."""
    return " ".join(text.split())


def table(stdout: str) -> dict[str, str]:
    """The rows ``│ label │ value │`` of a two-column rich table."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("│┃").split("│")]
        if len(cells) == 2:
            rows[cells[0]] = cells[1]
    return rows


def ok_json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout)


def run_ids(cli: Cli, db: Path) -> list[str]:
    return [r["id"] for r in ok_json(cli("runs", "list", "--db", db, "--json"))]


# --- run -------------------------------------------------------------------------------------


def test_run_prints_the_json_result_and_exits_0(cli: Cli, db: Path) -> None:
    assert ok_json(cli("run", f"{WF}:greet", "--input", '"ada"', "--db", db)) == {"greeting": "hello ADA"}
    assert db.exists()


def test_run_maps_a_json_object_or_array_onto_several_parameters(cli: Cli, db: Path) -> None:
    by_name = cli("run", f"{WF}:order", "--input", '{"item": "pen", "qty": 2}', "--db", db)
    assert ok_json(by_name) == {"item": "pen", "qty": 2}
    by_position = cli("run", f"{WF}:order", "-i", '["ink", 3]', "--db", db)
    assert ok_json(by_position) == {"item": "ink", "qty": 3}


def test_run_reads_the_input_from_a_file(cli: Cli, db: Path, tmp_path: Path) -> None:
    (tmp_path / "input.json").write_text('"grace"')
    assert ok_json(cli("run", f"{WF}:greet", "--input", "@input.json", "--db", db)) == {
        "greeting": "hello GRACE"
    }


def test_run_with_a_run_id_is_idempotent(cli: Cli, db: Path) -> None:
    first = cli("run", f"{WF}:greet", "--input", '"ada"', "--run-id", "fixed-id", "--db", db)
    again = cli("run", f"{WF}:greet", "--input", '"ada"', "--run-id", "fixed-id", "--db", db)
    assert ok_json(first) == ok_json(again) == {"greeting": "hello ADA"}
    assert run_ids(cli, db) == ["fixed-id"]


def test_a_failing_run_exits_1_and_names_the_error(cli: Cli, db: Path) -> None:
    proc = cli("run", f"{WF}:double", "--input", "-1", "--db", db)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    message = one_line(proc.stderr)
    assert "failed" in message
    assert "ValueError" in message
    assert "negative input -1" in message
    [run] = ok_json(cli("runs", "list", "--db", db, "--json"))
    assert run["status"] == "failed"
    assert run["error"]["message"] == "negative input -1"


def test_bad_json_input_exits_2_naming_the_problem(cli: Cli, db: Path) -> None:
    proc = cli("run", f"{WF}:greet", "--input", "{oops", "--db", db)
    assert proc.returncode == 2
    message = one_line(proc.stderr)
    assert "--input is not valid JSON" in message
    assert "line 1 column 2" in message
    assert not db.exists(), "nothing may be journaled for a rejected input"


def test_input_of_the_wrong_type_exits_2(cli: Cli, db: Path) -> None:
    proc = cli("run", f"{WF}:double", "--input", '"abc"', "--db", db)
    assert proc.returncode == 2
    message = one_line(proc.stderr)
    assert "input of workflow 'double' is invalid" in message
    assert "valid integer" in message


def test_unknown_workflow_exits_2_listing_the_known_ones(cli: Cli, db: Path) -> None:
    proc = cli("run", f"{WF}:nope", "--input", "1", "--db", db)
    assert proc.returncode == 2
    message = one_line(proc.stderr)
    assert "has no workflow 'nope'" in message
    assert "greet" in message
    assert "double" in message


def test_missing_workflow_file_exits_2(cli: Cli, db: Path) -> None:
    proc = cli("run", "missing.py:greet", "--input", "1", "--db", db)
    assert proc.returncode == 2
    assert "no such file: missing.py" in one_line(proc.stderr)


def test_target_without_a_workflow_name_exits_2(cli: Cli, db: Path) -> None:
    proc = cli("run", str(WF), "--input", "1", "--db", db)
    assert proc.returncode == 2
    assert "expected MODULE:WORKFLOW" in one_line(proc.stderr)


@pytest.mark.parametrize("args", [[], ["--input", "1", "--batch", "x.jsonl"]], ids=["neither", "both"])
def test_run_needs_exactly_one_of_input_and_batch(cli: Cli, db: Path, args: list[str]) -> None:
    proc = cli("run", f"{WF}:greet", *args, "--db", db)
    assert proc.returncode == 2
    assert "exactly one of --input" in one_line(proc.stderr)


# --- run --batch ---------------------------------------------------------------------------


def test_batch_prints_a_summary_with_counts(cli: Cli, db: Path, tmp_path: Path) -> None:
    batch = tmp_path / "names.jsonl"
    batch.write_text('"a"\n"b"\n\n"c"\n')  # blank lines are skipped
    proc = cli("run", f"{WF}:greet", "--batch", batch, "--db", db)
    assert proc.returncode == 0, proc.stderr
    assert "batch summary: greet" in proc.stdout
    rows = table(proc.stdout)
    assert (rows["runs"], rows["completed"], rows["failed"]) == ("3", "3", "0")
    assert rows["results"] == "hello A: 1, hello B: 1, hello C: 1"
    assert len(run_ids(cli, db)) == 3


def test_batch_with_a_failing_line_counts_it_and_exits_1(cli: Cli, db: Path, tmp_path: Path) -> None:
    batch = tmp_path / "numbers.jsonl"
    batch.write_text("1\n-2\n3\n")
    proc = cli("run", f"{WF}:double", "--batch", batch, "--db", db)
    assert proc.returncode == 1
    rows = table(proc.stdout)
    assert (rows["runs"], rows["completed"], rows["failed"]) == ("3", "2", "1")
    assert "negative input -2" in one_line(proc.stderr)


def test_batch_with_a_bad_line_exits_2_naming_the_line(cli: Cli, db: Path, tmp_path: Path) -> None:
    batch = tmp_path / "bad.jsonl"
    batch.write_text('"a"\n{nope\n')
    proc = cli("run", f"{WF}:greet", "--batch", batch, "--db", db)
    assert proc.returncode == 2
    assert "bad.jsonl:2 is not valid JSON" in one_line(proc.stderr)
    missing = cli("run", f"{WF}:greet", "--batch", tmp_path / "absent.jsonl", "--db", db)
    assert missing.returncode == 2
    assert "no such file" in one_line(missing.stderr)


# --- runs list / show ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A journal holding three finished runs (greet, order, a failed double), made in-process:
    the commands under test here only read it."""
    wf = import_module(str(WF))
    db = tmp_path_factory.mktemp("history") / "journal.db"

    async def populate() -> dict[str, Any]:
        async with bm.Engine(db, workflows=[wf.greet, wf.order, wf.double]) as engine:
            greet = await engine.start(wf.greet, "ada")
            await greet.result(timeout=10)
            order = await engine.start(wf.order, "pen", 4)
            await order.result(timeout=10)
            double = await engine.start(wf.double, -5)
            with pytest.raises(bm.RunFailed):
                await double.result(timeout=10)
        return {"db": db, "greet": greet.id, "order": order.id, "double": double.id}

    return asyncio.run(populate())


def test_runs_list_and_show_as_json(cli: Cli, history: dict[str, Any]) -> None:
    db = history["db"]
    runs = ok_json(cli("runs", "list", "--db", db, "--json"))
    assert [(r["id"], r["workflow"], r["status"]) for r in runs] == [
        (history["double"], "double", "failed"),
        (history["order"], "order", "completed"),
        (history["greet"], "greet", "completed"),
    ]  # newest first
    assert all("steps" not in r for r in runs)
    assert runs[1]["input"] == ["pen", 4]
    assert runs[1]["output"] == {"item": "pen", "qty": 4}
    assert runs[0]["error"]["message"] == "negative input -5"

    failed = ok_json(cli("runs", "list", "--db", db, "--json", "--status", "failed"))
    assert [r["id"] for r in failed] == [history["double"]]
    greets = ok_json(cli("runs", "list", "--db", db, "--json", "--workflow", "greet", "--limit", "5"))
    assert [r["id"] for r in greets] == [history["greet"]]

    shown = ok_json(cli("runs", "show", history["greet"], "--db", db, "--json"))
    assert (shown["id"], shown["status"], shown["output"]) == (
        history["greet"],
        "completed",
        {"greeting": "hello ADA"},
    )
    [step] = shown["steps"]
    assert (step["seq"], step["name"], step["kind"], step["status"], step["attempts"]) == (
        1,
        "shout",
        "step",
        "completed",
        1,
    )
    assert step["output"] == "ADA"
    assert step["duration"] is not None

    failed_run = ok_json(cli("runs", "show", history["double"], "--db", db, "--json"))
    [step] = failed_run["steps"]
    assert (step["name"], step["status"]) == ("check", "failed")
    assert step["error"]["message"] == "negative input -5"


def test_runs_list_and_show_as_tables(cli: Cli, history: dict[str, Any]) -> None:
    db, run_id = history["db"], history["greet"]
    listed = cli("runs", "list", "--db", db)
    assert listed.returncode == 0, listed.stderr
    assert re.search(rf"{run_id}\s*│\s*greet\s*│\s*completed", listed.stdout)
    assert re.search(rf"{history['double']}\s*│\s*double\s*│\s*failed", listed.stdout)
    shown = cli("runs", "show", history["double"], "--db", db)
    assert shown.returncode == 0, shown.stderr
    text = one_line(shown.stdout)
    assert f"{history['double']} double failed" in text
    assert "error: builtins.ValueError: negative input -5" in text
    assert re.search(r"1\s*│\s*check\s*│\s*step\s*│\s*failed", shown.stdout)


def test_runs_list_on_a_missing_journal_exits_2(cli: Cli, tmp_path: Path) -> None:
    proc = cli("runs", "list", "--db", tmp_path / "absent.db")
    assert proc.returncode == 2
    assert "no journal at" in one_line(proc.stderr)
    assert not (tmp_path / "absent.db").exists(), "a read command must not create a journal"
    default = cli("runs", "list")  # no --db, no $BANDMASTER_DB: ./bandmaster.db in tmp_path
    assert default.returncode == 2
    assert "bandmaster.db" in one_line(default.stderr)


def test_runs_show_of_an_unknown_run_exits_2(cli: Cli, history: dict[str, Any]) -> None:
    proc = cli("runs", "show", "no-such-run", "--db", history["db"])
    assert proc.returncode == 2
    assert "no run 'no-such-run'" in one_line(proc.stderr)


# --- signal / cancel -------------------------------------------------------------------------


def wait_for_status(db: Path, status: str, timeout: float = 30) -> str:
    """The id of the newest run once it has ``status`` (read straight from the journal)."""
    deadline = time.monotonic() + timeout
    while True:
        if db.exists():
            row = None
            with (
                contextlib.closing(sqlite3.connect(db, timeout=10)) as conn,
                contextlib.suppress(sqlite3.OperationalError),  # schema not created yet
            ):
                row = conn.execute("SELECT id, status FROM runs ORDER BY created_at DESC").fetchone()
            if row is not None and row[1] == status:
                return str(row[0])
        assert time.monotonic() < deadline, f"no run became {status} within {timeout}s"
        time.sleep(0.02)


def test_signal_resumes_a_run_waiting_in_a_run_command(
    cli: Cli, db: Path, background: Callable[..., subprocess.Popen[str]]
) -> None:
    runner = background("run", f"{WF}:gate", "--input", '"T-7"', "--db", db)
    run_id = wait_for_status(db, "waiting")
    sent = cli("signal", run_id, "approve", '{"ok": true}', "--db", db)
    assert sent.returncode == 0, sent.stderr
    assert f"signal 'approve' sent to {run_id}" in one_line(sent.stdout)
    out, errors = runner.communicate(timeout=30)
    assert runner.returncode == 0, errors
    assert json.loads(out) == {"ticket": "T-7", "decision": {"ok": True}}


def test_cancel_of_a_waiting_run(
    cli: Cli, db: Path, background: Callable[..., subprocess.Popen[str]]
) -> None:
    runner = background("run", f"{WF}:gate", "--input", '"T-8"', "--db", db)
    run_id = wait_for_status(db, "waiting")
    proc = cli("cancel", run_id, "--db", db)
    assert proc.returncode == 0, proc.stderr
    assert one_line(proc.stdout) == f"run {run_id}: cancelled"
    # The `run` command waiting for the result reports the cancellation and exits 1.
    _, errors = runner.communicate(timeout=30)
    assert runner.returncode == 1
    assert "cancelled" in one_line(errors)
    shown = ok_json(cli("runs", "show", run_id, "--db", db, "--json"))
    assert shown["status"] == "cancelled"
    assert shown["ended_at"] is not None
    # A finished run cannot be signalled.
    late = cli("signal", run_id, "approve", "true", "--db", db)
    assert late.returncode == 2
    assert f"run {run_id} is already cancelled" in one_line(late.stderr)


def test_signal_to_an_unknown_run_exits_2(cli: Cli, history: dict[str, Any]) -> None:
    proc = cli("signal", "no-such-run", "approve", '{"ok": true}', "--db", history["db"])
    assert proc.returncode == 2
    assert "no run 'no-such-run'" in one_line(proc.stderr)
    assert "Traceback" not in proc.stderr


def test_signal_with_a_bad_payload_exits_2(cli: Cli, history: dict[str, Any]) -> None:
    proc = cli("signal", history["greet"], "approve", "{not json", "--db", history["db"])
    assert proc.returncode == 2
    assert "payload is not valid JSON" in one_line(proc.stderr)


def test_cancel_of_an_unknown_run_exits_2(cli: Cli, history: dict[str, Any]) -> None:
    proc = cli("cancel", "no-such-run", "--db", history["db"])
    assert proc.returncode == 2
    assert "no run 'no-such-run'" in one_line(proc.stderr)


# --- worker ----------------------------------------------------------------------------------


def test_worker_with_a_missing_module_exits_2(cli: Cli, db: Path, tmp_path: Path) -> None:
    proc = cli("worker", tmp_path / "missing.py", "--db", db)
    assert proc.returncode == 2
    assert "no such file" in one_line(proc.stderr)
    empty = tmp_path / "empty_module.py"
    empty.write_text("X = 1\n")
    proc = cli("worker", empty, "--db", db)
    assert proc.returncode == 2
    assert "defines no @bm.workflow" in one_line(proc.stderr)


def test_worker_stops_cleanly_on_sigint(
    cli: Cli, db: Path, background: Callable[..., subprocess.Popen[str]]
) -> None:
    worker = background("worker", WF, "--db", db, "--poll", "0.05")
    assert worker.stderr is not None
    banner = worker.stderr.readline()  # printed once the worker is serving
    assert "serving" in banner
    for name in ("double", "gate", "greet", "order"):
        assert name in banner
    worker.send_signal(signal.SIGINT)
    _, rest = worker.communicate(timeout=30)
    assert worker.returncode == 0, rest
    assert "draining" in rest


def test_runs_list_filters_by_search_age_and_order(cli: Cli, db: Path) -> None:
    @bm.workflow(name="ticket")
    async def ticket(text: str) -> str:
        return text

    async def start() -> list[str]:
        async with bm.Engine(db, worker=False) as client:
            return [
                (await client.start(ticket, text)).id
                for text in ("charged twice", "lost card", "charged once")
            ]

    twice, lost, once = asyncio.run(start())
    found = json.loads(cli("runs", "list", "--db", db, "--search", "charged", "--json").stdout)
    assert [r["id"] for r in found] == [once, twice]  # newest first
    oldest = json.loads(
        cli("runs", "list", "--db", db, "--order", "oldest", "--since", "1h", "--json").stdout
    )
    assert [r["id"] for r in oldest] == [twice, lost, once]
    bad = cli("runs", "list", "--db", db, "--order", "random")
    assert bad.returncode == 2
    assert "--order 'random': use one of newest, oldest, longest, shortest" in bad.stderr
