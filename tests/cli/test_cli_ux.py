"""What the CLI says and accepts, as the installed console script in a subprocess: run-id
prefixes, ``bandmaster start``, where a run waits, signals nobody waits for, ``--version`` and
completion, and one-line errors (exit 2) for the user's broken module, a wrong ``--data`` and a
missing extra. Output is not a TTY here, as in a pipe: nothing may be cut or wrapped."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import pty
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import bandmaster as bm
from bandmaster.cli._loader import import_module

from .test_cli import WF, Cli, _env, _exe, background, cli, db, ok_json, wait_for_status

__all__ = ["background", "cli", "db"]  # fixtures used here


def journal_with(db: Path, *run_ids: str) -> None:
    """Runs of ``greet`` with these ids, finished."""
    wf = import_module(str(WF))

    async def populate() -> None:
        async with bm.Engine(db, workflows=[wf.greet]) as engine:
            for run_id in run_ids:
                await (await engine.start(wf.greet, "ada", run_id=run_id)).result(timeout=10)

    asyncio.run(populate())


def test_a_unique_prefix_finds_the_run_and_an_ambiguous_one_lists_candidates(cli: Cli, db: Path) -> None:
    journal_with(db, "order-1", "order-10", "order-2", "batch-7")
    shown = ok_json(cli("runs", "show", "bat", "--db", db, "--json"))
    assert shown["id"] == "batch-7"
    assert ok_json(cli("runs", "show", "order-1", "--db", db, "--json"))["id"] == "order-1"  # exact wins
    # A narrow terminal's cut id, ellipsis and all, pastes back.
    assert ok_json(cli("runs", "show", "batch…", "--db", db, "--json"))["id"] == "batch-7"
    ambiguous = cli("runs", "show", "order", "--db", db)
    assert ambiguous.returncode == 2
    assert ambiguous.stderr.splitlines() == [
        "error: run id 'order' is ambiguous: it starts order-1, order-10, order-2; give more characters"
    ]
    cancelled = cli("cancel", "batch", "--db", db)
    assert (cancelled.returncode, cancelled.stdout.strip()) == (0, "run batch-7: completed")


def test_start_queues_a_run_and_prints_only_its_id(cli: Cli, db: Path) -> None:
    proc = cli("start", f"{WF}:order", "--input", '{"item": "pen", "qty": 2}', "--db", db)
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.strip()
    assert proc.stdout == run_id + "\n"  # so `id=$(bandmaster start ...)` works
    shown = ok_json(cli("runs", "show", run_id, "--db", db, "--json"))
    assert (shown["status"], shown["input"], shown["claims"], shown["steps"]) == (
        "queued",
        ["pen", 2],
        0,
        [],
    )  # queued for workers, nothing executed here
    again = cli(
        "start", f"{WF}:order", "--input", '{"item": "pen", "qty": 2}', "--run-id", run_id, "--db", db
    )
    assert again.stdout.strip() == run_id
    bad = cli("start", f"{WF}:order", "--input", '{"item": "pen", "qty": "x"}', "--db", db)
    assert bad.returncode == 2
    [line] = bad.stderr.splitlines()  # pydantic's several lines, joined, with [type=...] kept
    assert line.startswith("error: input of workflow 'order' is invalid: 1 validation error")
    assert "[type=int_parsing, input_value='x', input_type=str]" in line


def test_run_says_what_it_waits_for_and_the_printed_command_sends_it(
    cli: Cli, db: Path, background: Callable[..., subprocess.Popen[str]]
) -> None:
    runner = background("run", f"{WF}:gate", "--input", '"T-9"', "--db", db)
    assert runner.stderr is not None
    started = runner.stderr.readline()
    run_id = wait_for_status(db, "waiting")
    assert started.strip() == f"run {run_id} (gate) started in {db}"
    hint = runner.stderr.readline().strip()
    assert hint.startswith(f"run {run_id} is waiting for signal 'approve': send it with `")
    command = shlex.split(hint.split("`")[1].replace("'JSON'", "'{\"ok\": 1}'"))
    assert command[:4] == ["bandmaster", "signal", run_id, "approve"]
    nobody = cli("signal", run_id[:8], "aprove", "1", "--db", db)
    assert nobody.returncode == 0
    assert nobody.stderr.startswith(f"warning: run {run_id} is not waiting for signal 'aprove'")
    sent = cli(*command[1:])
    assert (sent.returncode, sent.stderr) == (0, "")
    out, _ = runner.communicate(timeout=30)
    assert json.loads(out) == {"ticket": "T-9", "decision": {"ok": 1}}


def test_version_and_completion(cli: Cli) -> None:
    version = cli("--version")
    assert version.stdout == f"bandmaster {importlib.metadata.version('bandmaster')}\n"
    assert "--install-completion" in cli("--help").stdout
    # Our own help text is not markup either: "[default: ...]" used to vanish from --help.
    assert "[default: $BANDMASTER_DB or ./bandmaster.db]" in " ".join(
        cli("runs", "list", "--help").stdout.split()
    )


def test_an_error_in_the_users_module_is_one_line_with_their_frames(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "helpers.py").write_text("def setup():\n    return undefined_name\n")
    (tmp_path / "app.py").write_text("import helpers\n\nCONFIG = helpers.setup()\n")
    (tmp_path / "broken.py").write_text("async def triage(:\n    pass\n")
    for command in (["run", "app.py:triage", "--input", "1"], ["worker", "app.py"], ["start", "app.py:x"]):
        proc = cli(*command, "--db", tmp_path / "j.db")
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.splitlines() == [
            "error: cannot import app.py: NameError: name 'undefined_name' is not defined "
            "(at helpers.py line 2 in setup, called from app.py line 3 in <module>)"
        ]
    syntax = cli("run", "broken.py:triage", "--input", "1")
    assert syntax.returncode == 2
    [line] = syntax.stderr.splitlines()
    assert line.startswith("error: cannot import broken.py: SyntaxError:")
    assert "line 1" in line


def test_an_error_line_is_not_wrapped_without_columns(tmp_path: Path) -> None:
    """The failure of test_export_jsonl on a clone with a long temporary path: rich wrapped the
    error at 80 columns when stdout was not a TTY and COLUMNS was unset."""
    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 6)
    env = {k: v for k, v in _env().items() if k != "COLUMNS"}
    proc = subprocess.run(
        [_exe(), "runs", "list", "--db", str(deep / "absent.db")], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"error: no journal at {deep / 'absent.db'}; pass --db or set BANDMASTER_DB"
    ]


def test_demo_with_a_wrong_data_path_is_one_line(cli: Cli, tmp_path: Path) -> None:
    proc = cli("demo", "--data", tmp_path / "banking77")
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"error: --data {tmp_path / 'banking77'}: no such folder; give a Banking77")
    (tmp_path / "empty").mkdir()
    wrong = cli("demo", "--data", tmp_path / "empty", "--limit", "5", "--db", tmp_path / "d.db")
    assert wrong.returncode == 2
    assert wrong.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "neither a Banking77 folder" in wrong.stderr
    assert "Traceback" not in wrong.stderr


@pytest.mark.parametrize(
    ("blocked", "command", "message"),
    [
        ("uvicorn", ["server"], "bandmaster server needs the server extra (uvicorn is missing)"),
        ("uvicorn", ["demo", "--ui"], "--ui needs the server extra (uvicorn is missing)"),
        ("joblib", ["demo", "--limit", "5"], "bandmaster demo needs the demo extra (joblib is missing)"),
    ],
)
def test_a_missing_extra_names_the_install_command(
    tmp_path: Path, blocked: str, command: list[str], message: str
) -> None:
    """A package made unimportable (as without the extra): one line naming the extra and the
    install command; `demo --ui` says it before running the demo."""
    shim = tmp_path / "shim" / blocked
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text(
        f"raise ModuleNotFoundError(\"No module named '{blocked}'\", name='{blocked}')\n"
    )
    path = os.pathsep.join(filter(None, [str(shim.parent), os.environ.get("PYTHONPATH")]))
    proc = subprocess.run(
        [_exe(), *command, "--db", str(tmp_path / "d.db")],
        capture_output=True,
        text=True,
        env={**_env(), "PYTHONPATH": path},
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2
    extra = "server" if blocked == "uvicorn" else "demo"
    assert proc.stderr.splitlines() == [f"error: {message}: pip install 'bandmaster[{extra}]'"]
    assert proc.stdout == ""  # no demo ran


def on_a_terminal(*args: str | Path, columns: int) -> str:
    """Run ``bandmaster`` with stdout on a pseudo-terminal, as in an interactive shell."""
    leader, follower = pty.openpty()
    env = {**_env(), "COLUMNS": str(columns), "TERM": "xterm"}
    proc = subprocess.Popen([_exe(), *map(str, args)], stdout=follower, stderr=subprocess.PIPE, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    return b"".join(chunks).decode()


def test_on_a_terminal_escapes_in_data_are_shown_and_cut_values_end_in_an_ellipsis(db: Path) -> None:
    hostile = import_module(str(WF.parent / "wf_hostile.py"))

    async def populate() -> tuple[str, str]:
        async with bm.Engine(db, workflows=[hostile.hostile, hostile.crash]) as engine:
            done = await engine.start(hostile.hostile, hostile.HOSTILE)
            await done.result(timeout=10)
            failed = await engine.start(hostile.crash, hostile.HOSTILE)
            with pytest.raises(bm.RunFailed):
                await failed.result(timeout=10)
            return done.id, failed.id

    done, failed = asyncio.run(populate())
    shown = on_a_terminal("runs", "show", failed, "--db", db, columns=1000)
    assert "\x1b[31mred" not in shown  # the data's escape never reaches the terminal
    assert "\\x1b[31mred\\x1b[0m %s {0} %(name)s" in shown
    output = next(
        line
        for line in on_a_terminal("runs", "show", done, "--db", db, columns=1000).splitlines()
        if line.startswith("output: ")
    )
    assert output.endswith("…")
    assert len(output) == len("output: ") + 200


def test_on_a_narrow_terminal_run_ids_stay_whole(db: Path) -> None:
    journal_with(db, "a-run-id-long-enough-to-be-squeezed-0001")
    listing = on_a_terminal("runs", "list", "--db", db, columns=72)
    assert "a-run-id-long-enough-to-be-squeezed-0001" in listing  # other columns end in … instead
    assert "…" in listing
