"""Files and JSON the user hands the CLI are data that may be anything: a binary file, a
directory, JSON nested past Python's recursion limit, an output path that cannot be written.
Each is one error line with an exit code, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bandmaster.cli._app import app
from bandmaster.store._sqlite import SQLiteStore

WF = Path(__file__).resolve().parent / "wf_cli.py"
BINARY = bytes(range(256)) * 4  # not UTF-8 from byte 0x80 on


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (
        result.exception
    )
    return result.exit_code, " ".join(result.output.split())


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "bm.db"
    SQLiteStore(path).close()
    return path


@pytest.mark.parametrize("command", ["run", "start"])
def test_a_binary_input_file_is_one_line(tmp_path: Path, db: Path, command: str) -> None:
    blob = tmp_path / "input.bin"
    blob.write_bytes(BINARY)
    code, output = invoke(command, f"{WF}:greet", "--input", f"@{blob}", "--db", str(db))
    assert code == 2
    assert "not UTF-8 text (byte 0x80 at offset 128)" in output


def test_a_directory_as_input_file_is_one_line(tmp_path: Path, db: Path) -> None:
    code, output = invoke("start", f"{WF}:greet", "--input", f"@{tmp_path}", "--db", str(db))
    assert code == 2
    assert "is a directory" in output


def test_json_nested_past_the_recursion_limit_is_one_line(tmp_path: Path, db: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    code, output = invoke("start", f"{WF}:greet", "--input", f"@{deep}", "--db", str(db))
    assert code == 2
    assert "nested too deeply" in output


def test_a_binary_batch_file_is_one_line(tmp_path: Path, db: Path) -> None:
    blob = tmp_path / "batch.jsonl"
    blob.write_bytes(BINARY)
    code, output = invoke("run", f"{WF}:greet", "--batch", str(blob), "--db", str(db))
    assert code == 2
    assert "--batch" in output
    assert "not UTF-8" in output


def test_export_to_a_path_that_cannot_be_written_is_one_line(tmp_path: Path, db: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    code, output = invoke("export", "--db", str(db), "--to", str(blocker / "runs.jsonl"))
    assert code == 1
    assert "export: cannot write" in output


def test_a_binary_golden_file_is_one_line(tmp_path: Path, db: Path) -> None:
    blob = tmp_path / "labels.jsonl"
    blob.write_bytes(BINARY)
    code, output = invoke("replay", f"{WF}:greet", "--db", str(db), "--golden", str(blob))
    assert code in (1, 2)
    assert "UTF-8" in output
