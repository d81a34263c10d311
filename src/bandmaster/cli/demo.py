"""``bandmaster demo``: the support-triage example end to end, with a report.

The demo's code lives in ``examples/support_triage/`` of a source checkout (it is an example to
read and copy, not part of the library); this command finds that folder, runs it and prints
its report.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console()
CHECKOUT = Path(__file__).resolve().parents[3]


def _examples(folder: Path | None) -> Path:
    found = folder or CHECKOUT / "examples" / "support_triage"
    if not (found / "demo.py").is_file():
        console.print(
            f"[bold red]error:[/] no support-triage example at {found}. The demo runs from a source "
            "checkout of bandmaster; pass --examples PATH/TO/examples/support_triage."
        )
        raise typer.Exit(2)
    return found


def _print(report: Any, html_path: Path | None) -> None:
    summary = Table(title=f"Support triage on {report.dataset}: {report.completed}/{report.tickets} tickets")
    summary.add_column("measure")
    summary.add_column("value", justify="right")
    saved = 1 - report.cost_per_ticket / report.large_cost_per_ticket if report.large_cost_per_ticket else 0.0
    rows = [
        ("intent accuracy (cascade)", f"{report.intent_accuracy:.3f}"),
        ("intent accuracy (large model alone)", f"{report.large_accuracy:.3f}"),
        ("route accuracy", "n/a" if report.route_accuracy is None else f"{report.route_accuracy:.3f}"),
        ("model cost per ticket (cascade)", f"${report.cost_per_ticket:.6f}"),
        ("model cost per ticket (always large)", f"${report.large_cost_per_ticket:.6f}  ({saved:.0%} saved)"),
        ("escalation (share reaching each stage)", " → ".join(f"{e:.0%}" for e in report.escalation)),
        (
            "ticket latency p50 / p99 (no review wait)",
            f"{report.ticket_p50_ms:.1f} / {report.ticket_p99_ms:.1f} ms",
        ),
        ("orchestration overhead per ticket", f"{report.overhead_ms:.2f} ms"),
        ("retries / fallbacks", f"{report.retries} / {report.fallbacks}"),
        (
            "PHI reviews: flagged / held / defaulted",
            f"{report.reviews_flagged} / {report.reviews_held} / {report.reviews_defaulted}",
        ),
        ("failed runs", str(report.failed)),
        ("wall time", f"{report.seconds:.1f} s"),
    ]
    if report.faults_injected:
        rows.append(("faults injected", ", ".join(f"{k} {v}" for k, v in report.faults_injected.items())))
    for name, value in rows:
        summary.add_row(name, value)
    console.print(summary)
    routes = Table(title="Routes")
    routes.add_column("route")
    routes.add_column("tickets", justify="right")
    for route, count in report.routes.items():
        routes.add_row(route, str(count))
    steps = Table(title="Steps")
    for column in ("step", "calls", "p50 ms", "p99 ms", "retries"):
        steps.add_column(column, justify="left" if column == "step" else "right")
    for s in report.latency:
        steps.add_row(s.step, str(s.calls), f"{s.p50_ms:.2f}", f"{s.p99_ms:.2f}", str(s.retries))
    console.print(routes, steps)
    if html_path is not None:
        console.print(f"HTML report: {html_path}")


def demo(
    data: Annotated[
        Path | None,
        typer.Option(help="Banking77 or CLINC150 folder to run on instead of the bundled tickets"),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Triage only the first N tickets")] = None,
    chaos: Annotated[bool, typer.Option(help="Inject model timeouts, 429s, 503s and garbage")] = False,
    chaos_rate: Annotated[float, typer.Option(help="Share of model calls that fail under --chaos")] = 0.1,
    db: Annotated[Path, typer.Option(help="Journal for the demo (recreated)")] = Path(".bandmaster/demo.db"),
    html: Annotated[Path | None, typer.Option(help="Where to write the HTML report")] = Path(
        ".bandmaster/demo-report.html"
    ),
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    examples: Annotated[Path | None, typer.Option(help="The examples/support_triage folder")] = None,
) -> None:
    """Triage patient-support tickets end to end on the embedded engine and report."""
    folder = _examples(examples)
    sys.path.insert(0, str(folder))
    from demo import run_demo  # type: ignore[import-not-found]
    from report_html import write_html  # type: ignore[import-not-found]

    db.parent.mkdir(parents=True, exist_ok=True)
    with Progress(
        TextColumn("[bold]triage"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=json_out,
        disable=json_out,
    ) as progress:
        task = progress.add_task("triage", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        report = asyncio.run(
            run_demo(
                db=db,
                data=data,
                limit=limit,
                chaos=chaos_rate if chaos else 0.0,
                cache_dir=db.parent / "models",
                on_progress=advance,
            )
        )
    html_path = write_html(report, html) if html is not None else None
    if json_out:
        console.print_json(report.model_dump_json())
    else:
        _print(report, html_path)
