"""``bandmaster runs watch RUN``: a run followed live in the terminal, from the journal: steps
as they end (and model streams as they start; every step as it starts when the worker runs
with ``--live-steps``), the tokens of a model stream as they arrive,
and the outcome. Everything printed is data, through the console helpers (never markup)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bandmaster.cli import _console as ui
from bandmaster.engine import RunInfo
from bandmaster.observe import ChunkReader, run_updates


class _Printer:
    """Tokens go on the current line; anything else starts a new line after them."""

    def __init__(self) -> None:
        self.mid_line = False

    def token(self, data: dict[str, Any]) -> None:
        if data["restart"]:
            self.end_line()
            ui.line(("  ↺ restart: a retry or fallback answers again", "yellow"))
            return
        ui.write(data["text"])
        self.mid_line = True

    def end_line(self) -> None:
        if self.mid_line:
            ui.write("\n")
            self.mid_line = False

    def step(self, data: dict[str, Any]) -> None:
        self.end_line()
        if data.get("marker") == "started":
            ui.line(("started ", "cyan"), data["name"], f" (seq {data['seq']})")
            return
        head = f"step {data['seq']} {data['name']} ({data['kind']}) "
        if data["status"] == "running":
            ui.line(head, ("streaming", "cyan"))
            return
        duration = data.get("duration")
        took = f" {duration * 1000:.1f} ms" if duration is not None else ""
        error = (data.get("error") or {}).get("message")
        ui.line(head, ui.status(data["status"]), took, *((f": {error}",) if error else ()))


async def watch(
    describe: Callable[[str], Awaitable[RunInfo]], run_id: str, *, poll: float, chunks: ChunkReader | None
) -> str:
    """Print the run's updates until it ends; return its final status."""
    printer = _Printer()
    final = "unknown"
    async for kind, data in run_updates(describe, run_id, poll=poll, chunks=chunks):
        if kind == "token":
            printer.token(data)
        elif kind == "step":
            printer.step(data)
        elif kind == "status":
            printer.end_line()
            ui.line(("run ", "bold"), run_id, " ", ui.status(data["status"]))
        elif kind == "end":
            printer.end_line()
            final = data["status"]
            if data.get("error"):
                error = data["error"]
                ui.line((f"error: {error.get('type')}: {error.get('message')}", "red"))
            elif data.get("output") is not None:
                ui.line("output: ", ui.cut(str(data["output"]), 2000))
    return final
