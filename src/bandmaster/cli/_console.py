"""How every ``bandmaster`` command writes to the terminal.

Text from users (run inputs, outputs, errors, workflow and signal names, file paths) is data:
the consoles here never parse Rich markup or ``:emoji:`` codes and never highlight, so
``[/etc/app]`` prints as ``[/etc/app]``. Our own styling is added with ``Text`` spans only.

Off a TTY (a pipe, a file, CI) nothing is cut or wrapped: tables and lines get the width they
need, so an id can be pasted into the next command and a message can be grepped. On a TTY,
values that do not fit are cut with an ellipsis, never silently, and control characters in data
(an ANSI escape in a model's answer) are shown as ``\x1b`` rather than sent to the terminal.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable
from typing import Any

import typer
from rich.console import Console
from rich.json import JSON
from rich.table import Column, Table
from rich.text import Text

UNLIMITED = 1_000_000
"""The width used off a TTY: wide enough that no table cell or line is ever wrapped."""

Part = str | Text | tuple[str, str]
"""A piece of a printed line: data (printed verbatim), or ``(text, style)`` for our styling."""


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _visible(text: str, tty: bool) -> str:
    """Data as printed: on a TTY its control characters escaped, so they cannot drive it."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text) if tty else text


def _console(stderr: bool) -> Console:
    # Built per call, for whatever sys.stdout/sys.stderr are now (pytest and CliRunner swap them).
    stream = sys.stderr if stderr else sys.stdout
    tty = stream.isatty()
    return Console(
        file=stream,
        markup=False,
        emoji=False,
        highlight=False,
        soft_wrap=not tty,
        width=None if tty else UNLIMITED,
    )


def stdout() -> Console:
    return _console(stderr=False)


def stderr() -> Console:
    return _console(stderr=True)


def on_tty() -> bool:
    return sys.stdout.isatty()


def line(*parts: Part, err: bool = False) -> None:
    """Print one line assembled from data and ``(text, style)`` pieces."""
    console = stderr() if err else stdout()
    tty = console.is_terminal
    shown = [
        _visible(p, tty) if isinstance(p, str) else (_visible(p[0], tty), p[1]) if isinstance(p, tuple) else p
        for p in parts
    ]
    console.print(Text.assemble(*shown), crop=False)


def write(text: str) -> None:
    """Data on stdout as it comes, without a line break (a model's tokens as they arrive)."""
    console = stdout()
    console.print(Text(_visible(text, console.is_terminal)), end="", crop=False, soft_wrap=True)
    console.file.flush()


def warn(message: str) -> None:
    line(("warning:", "bold yellow"), " ", message, err=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: MESSAGE`` as one line on stderr (a multi-line message, such as pydantic's,
    joined with ``; ``) and return the ``typer.Exit`` to raise: 2 for usage and input errors."""
    one_line = "; ".join(part.strip() for part in message.splitlines() if part.strip())
    line(("error:", "bold red"), " ", one_line, err=True)
    return typer.Exit(code)


def missing_extra(feature: str, extra: str, exc: ImportError) -> str:
    """The message for an optional dependency that is not installed, with the command to fix it."""
    missing = f" ({exc.name} is missing)" if exc.name else ""
    return f"{feature} needs the {extra} extra{missing}: pip install 'bandmaster[{extra}]'"


def cut(text: str, limit: int) -> str:
    """``text`` whole off a TTY; on a TTY at most ``limit`` characters, ending in an ellipsis
    when cut."""
    if len(text) <= limit or not on_tty():
        return text
    return text[: limit - 1] + "…"


class DataTable(Table):
    """A table whose cells are data: verbatim and whole off a TTY; on a TTY with control
    characters escaped, and cut with an ellipsis when the terminal is too narrow."""

    def add_row(self, *cells: Any, **options: Any) -> None:
        tty = on_tty()
        super().add_row(*(_visible(c, tty) if isinstance(c, str) else c for c in cells), **options)


def id_column(header: str, ids: Iterable[str]) -> Column:
    """A column of ids that a narrow terminal squeezes last: they stay whole, to be pasted."""
    return Column(header, no_wrap=True, min_width=max((len(i) for i in ids), default=len(header)))


def table(*columns: str | Column, title: str | None = None, show_header: bool = True) -> DataTable:
    folded = [Column(c) if isinstance(c, str) else c for c in columns]
    if not on_tty():
        for column in folded:
            column.overflow = "fold"
    return DataTable(*folded, title=title, show_header=show_header)


def show(renderable: Any, *, err: bool = False) -> None:
    """Print a table or other renderable built with the helpers above."""
    (stderr() if err else stdout()).print(renderable, crop=False)


def print_json(value: Any = None, *, text: str | None = None) -> None:
    """JSON on stdout: plain and unwrapped off a TTY (for ``jq``), highlighted on a TTY."""
    data = json.loads(text) if text is not None else value
    if not on_tty():
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
        sys.stdout.flush()
        return
    stdout().print(JSON.from_data(data, default=str), soft_wrap=True)


STATUS_STYLE = {"completed": "green", "failed": "red", "cancelled": "yellow", "waiting": "cyan"}


def status(value: str, note: str | None = None) -> Text:
    """A run status, coloured; ``note`` (e.g. ``no worker for triage@1``) after it, in yellow."""
    text = Text(value, style=STATUS_STYLE.get(value, ""))
    if note is not None:
        text.append(f" ({note})", style="yellow")
    return text
