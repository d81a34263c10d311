"""``bandmaster demo``: the flagship examples end to end, with a report.

The demos' code lives in ``examples/support_triage/`` and ``examples/contract_review/`` of a
source checkout (examples to read and copy, not part of the library); this command finds the
folder, runs it and prints its report.
"""

from __future__ import annotations

import asyncio
import sys
import webbrowser
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console()
CHECKOUT = Path(__file__).resolve().parents[3]
EXAMPLES = {
    "support-triage": ("support_triage", "demo.py"),
    "contract-review": ("contract_review", "review.py"),
}


def _examples(example: str, folder: Path | None) -> Path:
    if example not in EXAMPLES:
        console.print(f"[bold red]error:[/] unknown example {example!r}; choose one of {', '.join(EXAMPLES)}")
        raise typer.Exit(2)
    name, entry = EXAMPLES[example]
    found = folder or CHECKOUT / "examples" / name
    if not (found / entry).is_file():
        console.print(
            f"[bold red]error:[/] no {example} example at {found}. The demo runs from a source "
            f"checkout of bandmaster; pass --examples PATH/TO/examples/{name}."
        )
        raise typer.Exit(2)
    sys.path.insert(0, str(found))
    return found


def _print_review(report: Any) -> None:
    table = Table(title=f"Contract review: {report.completed}/{report.contracts} sample contracts")
    for column in ("contract", "risk (gold)", "compliant (gold)", "issues found", "missed", "chunks"):
        table.add_column(column)
    for r in report.results:
        missed = sorted(set(r.gold_issues) - set(r.issues))
        table.add_row(
            r.contract,
            f"{r.risk} ({r.gold_risk})",
            f"{r.compliant} ({r.gold_compliant})",
            ", ".join(r.issues) or "-",
            ", ".join(missed) or "-",
            str(r.chunks),
        )
    console.print(table)
    console.print(
        f"compliance accuracy {report.compliance_accuracy:.3f} · issues precision "
        f"{report.issue_precision:.3f} recall {report.issue_recall:.3f} · risk accuracy "
        f"{report.risk_accuracy:.3f} · {report.long_contracts} long contracts summarised by map-reduce · "
        f"{report.model_calls} model calls · ${report.cost_per_contract:.5f} per contract · "
        f"p50 {report.p50_ms:.0f} ms, p99 {report.p99_ms:.0f} ms"
    )


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
            "one ticket at a time: latency p50 / p99",
            f"{report.single_p50_ms:.1f} / {report.single_p99_ms:.1f} ms",
        ),
        (
            "  of which orchestration",
            f"{report.single_overhead_ms:.2f} ms ({report.single_overhead_share:.1%})",
        ),
        (
            "whole batch at once: latency p50 / p99",
            f"{report.ticket_p50_ms:.1f} / {report.ticket_p99_ms:.1f} ms",
        ),
        ("retries / fallbacks / re-asks", f"{report.retries} / {report.fallbacks} / {report.reasks}"),
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
    for run in getattr(report, "drift", None) or []:  # reviewers' overrides fed to Cascade.feedback
        drift = Table(
            title=f"Drift check: reviewer feedback, guard rail ±{run.max_drift:.2f} (fitted {run.fitted:.3f})"
        )
        for column in ("window", "drifted", "accuracy", "escalated", "threshold", "overrides"):
            drift.add_column(column, justify="right")
        for w in run.windows:
            drift.add_row(
                str(w.window), "yes" if w.drifted else "no", f"{w.accuracy:.3f}", f"{w.escalation:.0%}",
                f"{w.threshold:.3f}", str(w.overrides),
            )  # fmt: skip
        console.print(drift)
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
    example: Annotated[
        str, typer.Option(help="support-triage (patient tickets) or contract-review (the legal pipeline)")
    ] = "support-triage",
    examples: Annotated[Path | None, typer.Option(help="The example's folder in a source checkout")] = None,
    ui: Annotated[
        bool, typer.Option(help="Then serve the dashboard on the demo's journal (extra: server) until Ctrl-C")
    ] = False,
    port: Annotated[int, typer.Option(help="Port of the dashboard with --ui")] = 8080,
) -> None:
    """Run a flagship example end to end on the embedded engine and report."""
    _examples(example, examples)
    db.parent.mkdir(parents=True, exist_ok=True)
    if example == "contract-review":
        from review import run_review  # type: ignore[import-not-found]

        review = asyncio.run(run_review(db=db, limit=limit, cache_dir=db.parent / "models"))
        if json_out:
            console.print_json(review.model_dump_json())
        else:
            _print_review(review)
        if ui:
            _serve_dashboard(db, port)
        return
    from demo import run_demo  # type: ignore[import-not-found]
    from report_html import write_html  # type: ignore[import-not-found]

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
    if ui:
        _serve_dashboard(db, port)


def _serve_dashboard(db: Path, port: int) -> None:
    """The dashboard on the demo's journal, on 127.0.0.1, with a fresh token for the demo's
    compliance officer (the approver its PHI reviews allow)."""
    try:
        import uvicorn

        from bandmaster.server import create_app
        from bandmaster.server.auth import create_token
        from bandmaster.store.sqlite import SQLiteStore
    except ImportError as exc:
        console.print(
            f"[bold red]error:[/] --ui needs the server extra: pip install 'bandmaster[server]' ({exc})"
        )
        raise typer.Exit(2) from exc
    store = SQLiteStore(db)
    try:
        issued = create_token(store, "compliance", ["admin"], by="bandmaster demo")
    finally:
        store.close()
    url = f"http://127.0.0.1:{port}/login"
    console.print(f"dashboard: {url}  (log in with [bold]{issued.secret}[/]; Ctrl-C stops it)")
    webbrowser.open(url)
    uvicorn.run(create_app(db), host="127.0.0.1", port=port, log_level="warning", access_log=False)
