"""The command line on journals that are not what they should be: read-only (no write
permission, read-only media), damaged or truncated, a directory, another file. Read commands
work where they can; everything else fails with one line naming the path and the fix, never a
traceback. Real subprocesses on real files."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import bandmaster as bm
from bandmaster.cli._loader import import_module

WF = Path(__file__).resolve().parent / "wf_cli.py"
RUNS = 30


def _exe() -> str:
    candidate = Path(sys.executable).parent / "bandmaster"
    return str(candidate) if candidate.exists() else "bandmaster"


def bandmaster(
    *args: str | Path, cwd: Path, read_only_user: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``bandmaster``; ``read_only_user``: as a user the file permissions apply to (root
    bypasses them, so it runs without the capabilities that let it)."""
    argv = [_exe(), *map(str, args)]
    if read_only_user and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: file permissions cannot be enforced")
        argv = [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", *argv]
    env = {k: v for k, v in os.environ.items() if k != "BANDMASTER_DB"}
    env["COLUMNS"] = "1000"  # a long path must not wrap the one-line error
    env["NO_COLOR"] = "1"
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=cwd, env=env)


def one_line_error(proc: subprocess.CompletedProcess[str], code: int) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    message = proc.stderr.strip()
    assert message.count("\n") == 0, message
    return " ".join(message.split())


def make_journal(path: Path) -> list[str]:
    """A journal with RUNS finished runs of greet, WAL checkpointed into the main file."""
    wf = import_module(str(WF))

    async def main() -> list[str]:
        async with bm.Engine(path, workflows=[wf.greet, wf.gate]) as engine:
            handles = [await engine.start(wf.greet, f"user-{i:03d}" + "x" * 3000) for i in range(RUNS)]
            for handle in handles:
                await handle.result(timeout=30)
            waiting = await engine.start(wf.gate, "T-1", run_id="waiting-run")
            for _ in range(3000):
                if (await waiting.describe()).status == "waiting":
                    break
                await asyncio.sleep(0.01)
            return [h.id for h in handles]

    return asyncio.run(main())


# --- read-only ---------------------------------------------------------------------------------


@pytest.fixture
def read_only_journal(tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    media = tmp_path / "media"
    media.mkdir()
    db = media / "journal.db"
    run_ids = make_journal(db)
    assert not Path(f"{db}-wal").exists()  # closed cleanly: nothing beside the file
    db.chmod(0o444)
    media.chmod(0o555)
    try:
        yield db, run_ids
    finally:
        media.chmod(0o755)
        db.chmod(0o644)


def test_read_commands_work_on_a_journal_without_write_permission(
    read_only_journal: tuple[Path, list[str]], tmp_path: Path
) -> None:
    db, run_ids = read_only_journal
    listed = bandmaster(
        "runs", "list", "--db", db, "--json", "--limit", "100", cwd=tmp_path, read_only_user=True
    )
    assert listed.returncode == 0, listed.stderr
    assert "journal" not in listed.stderr
    assert run_ids[0] in listed.stdout
    shown = bandmaster("runs", "show", run_ids[0], "--db", db, cwd=tmp_path, read_only_user=True)
    assert shown.returncode == 0, shown.stderr
    assert "shout" in shown.stdout
    stats = bandmaster("stats", "--db", db, "--json", cwd=tmp_path, read_only_user=True)
    assert stats.returncode == 0, stats.stderr
    out = tmp_path / "out.jsonl"
    exported = bandmaster("export", "--db", db, "--to", out, cwd=tmp_path, read_only_user=True)
    assert exported.returncode == 0, exported.stderr
    assert len(out.read_text().splitlines()) == RUNS + 1
    doctor = bandmaster("doctor", "--db", db, cwd=tmp_path, read_only_user=True)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "read-only" in doctor.stdout
    assert sorted(p.name for p in db.parent.iterdir()) == ["journal.db"]  # nothing was written


def test_write_commands_on_a_read_only_journal_fail_in_one_line(
    read_only_journal: tuple[Path, list[str]], tmp_path: Path
) -> None:
    db, _ = read_only_journal
    for args in (("cancel", "waiting-run"), ("signal", "waiting-run", "approve"), ("worker", WF)):
        message = one_line_error(bandmaster(*args, "--db", db, cwd=tmp_path, read_only_user=True), 1)
        assert "read-only" in message
        assert str(db) in message


# --- damaged and truncated ---------------------------------------------------------------------


def damage(path: Path, table: str = "steps") -> None:
    """Overwrite a leaf page of ``table`` in the middle of the file with garbage (a bad sector)."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        leaves = [
            r[0]
            for r in conn.execute("SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf'", (table,))
        ]
    assert len(leaves) > 2, "the journal is too small to damage one page of many"
    with open(path, "r+b") as f:
        f.seek(size * (leaves[len(leaves) // 2] - 1))
        f.write(b"\xa5" * size)


@pytest.fixture
def damaged_journal(tmp_path: Path) -> tuple[Path, list[str]]:
    db = tmp_path / "journal.db"
    run_ids = make_journal(db)
    damage(db)
    return db, run_ids


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("runs", "list"), 1),
        (("runs", "show", "waiting-run"), 1),
        (("stats",), 1),
        (("export", "--to", "out.jsonl"), 1),
        (("approvals", "list"), 1),
        (("signal", "waiting-run", "approve"), 1),  # nothing is written into a damaged journal
        (("worker", str(WF)), 1),
        (("replay", f"{WF}:greet"), 2),
        (("server", "--port", "0"), 2),
    ],
    ids=["runs-list", "runs-show", "stats", "export", "approvals", "signal", "worker", "replay", "server"],
)
def test_a_damaged_journal_is_refused_in_one_line(
    damaged_journal: tuple[Path, list[str]], tmp_path: Path, args: tuple[str, ...], code: int
) -> None:
    db, _ = damaged_journal
    message = one_line_error(bandmaster(*args, "--db", db, cwd=tmp_path), code)
    assert "damaged" in message
    assert str(db) in message
    assert "bandmaster doctor" in message


def test_doctor_names_the_damage_and_saves_what_reads(
    damaged_journal: tuple[Path, list[str]], tmp_path: Path
) -> None:
    db, _ = damaged_journal
    saved = tmp_path / "saved.jsonl"
    proc = bandmaster("doctor", "--db", db, "--salvage", saved, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "DAMAGED" in proc.stdout
    assert "verdict   damaged" in proc.stdout
    saved_runs = len(saved.read_text().splitlines())
    assert 0 < saved_runs < RUNS + 1  # the runs whose steps sat on the bad page are named
    assert f"{saved_runs} runs read whole" in proc.stdout
    fresh = tmp_path / "fresh.db"
    imported = bandmaster("import", saved, "--db", fresh, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert f"imported {saved_runs} runs" in imported.stdout
    assert bandmaster("doctor", "--db", fresh, cwd=tmp_path).returncode == 0


def test_a_truncated_journal_is_refused_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    make_journal(db)
    with open(db, "r+b") as f:
        f.truncate(db.stat().st_size // 2)
    for args in (("runs", "list"), ("stats",), ("worker", str(WF))):
        message = one_line_error(bandmaster(*args, "--db", db, cwd=tmp_path), 1)
        assert str(db) in message
    doctor = bandmaster("doctor", "--db", db, cwd=tmp_path)
    assert doctor.returncode == 1
    assert "DAMAGED" in doctor.stdout


# --- not a journal -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("runs", "list"),
        ("runs", "show", "r1"),
        ("stats",),
        ("export", "--to", "o.jsonl"),
        ("worker", str(WF)),
        ("doctor",),
        ("signal", "r1", "go"),
        ("server", "--port", "0"),
    ],
    ids=["runs-list", "runs-show", "stats", "export", "worker", "doctor", "signal", "server"],
)
def test_a_db_that_is_not_a_journal_exits_2_in_one_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    directory = tmp_path / "adir"
    directory.mkdir()
    message = one_line_error(bandmaster(*args, "--db", directory, cwd=tmp_path), 2)
    assert f"{directory} is a directory" in message
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 200)
    message = one_line_error(bandmaster(*args, "--db", text, cwd=tmp_path), 2)
    assert "not a bandmaster journal" in message
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS customers (id INTEGER)")
    message = one_line_error(bandmaster(*args, "--db", other, cwd=tmp_path), 2)
    assert "another application's SQLite database" in message
    with sqlite3.connect(other) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["customers"]


def test_commits_left_in_the_wal_on_read_only_media_are_never_silently_skipped(tmp_path: Path) -> None:
    """Without a WAL index SQLite would read such a journal as immutable and skip the commits
    still in its -wal file: refuse in one line instead of showing an old state."""
    source = tmp_path / "journal.db"
    make_journal(source)
    media = tmp_path / "media"
    media.mkdir()
    with contextlib.closing(sqlite3.connect(source)) as writer:
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.execute("UPDATE runs SET status = 'failed' WHERE id = 'waiting-run'")
        writer.commit()
        shutil.copy(source, media / "journal.db")  # a copy taken with commits still in the WAL
        shutil.copy(f"{source}-wal", media / "journal.db-wal")
    media.chmod(0o555)
    try:
        proc = bandmaster("runs", "list", "--db", media / "journal.db", cwd=tmp_path, read_only_user=True)
        message = one_line_error(proc, 1)
        assert "journal.db-wal" in message
        assert "writable media" in message
    finally:
        media.chmod(0o755)
