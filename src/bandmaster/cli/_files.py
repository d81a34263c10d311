"""Files and JSON the user hands the CLI (``@input.json``, ``--batch``, ``pii scan @notes``):
read as UTF-8 text and parsed as JSON, every failure one line naming the file and the fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bandmaster.cli import _console as ui


def read_text(path: Path, what: str) -> str:
    """The text of a file the user named, or a one-line error (missing, a directory,
    unreadable, not UTF-8)."""
    if not path.exists():
        raise ui.fail(f"{what}: no such file {path}")
    if path.is_dir():
        raise ui.fail(f"{what}: {path} is a directory; give a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ui.fail(f"{what}: cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ui.fail(
            f"{what}: {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "is it a binary file? Save it as UTF-8"
        ) from exc


def loads(text: str, what: str) -> Any:
    """``text`` as JSON, or a one-line error saying where it is invalid."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise ui.fail(f"{what} is not valid JSON ({exc.msg} at {where})") from exc
    except RecursionError as exc:  # json.loads recurses once per nesting level
        raise ui.fail(f"{what} is nested too deeply to read as JSON") from exc


def user_json(text: str, what: str) -> Any:
    """A JSON argument: inline, or ``@path`` to read it from a file."""
    if text.startswith("@"):
        return loads(read_text(Path(text[1:]), what), what)
    return loads(text, what)


__all__ = ["loads", "read_text", "user_json"]
