"""The demo's HTML report: the same numbers as the terminal, with charts, in one self-contained
file (images inlined, no external assets)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from demo import Report


def summary_rows(report: Report) -> list[tuple[str, str]]:
    """The summary as (measure, formatted value): what both the terminal table and the HTML
    report print, so the two agree digit for digit."""
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
    return rows


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _charts(report: Report) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    charts = []
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.barh(list(report.routes), list(report.routes.values()), color="#4c78a8")
    ax.set_xlabel("tickets")
    ax.set_title("Where tickets went")
    charts.append(("Routes", _png(fig)))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3))
    names = [s.step for s in report.latency]
    ax.bar([i - 0.2 for i in range(len(names))], [s.p50_ms for s in report.latency], width=0.4, label="p50")
    ax.bar([i + 0.2 for i in range(len(names))], [s.p99_ms for s in report.latency], width=0.4, label="p99")
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set_ylabel("ms")
    ax.set_title("Latency per step")
    ax.legend()
    charts.append(("Latency per step", _png(fig)))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.scatter([report.large_cost_per_ticket * 1000], [report.large_accuracy], label="always large", s=60)
    ax.scatter([report.cost_per_ticket * 1000], [report.intent_accuracy], label="cascade", s=60, marker="D")
    ax.set_xlabel("model cost per ticket (USD per 1,000 tickets)")
    ax.set_ylabel("intent accuracy")
    ax.set_title("Cascade against the large model alone")
    ax.legend()
    charts.append(("Cost and accuracy", _png(fig)))
    plt.close(fig)
    return charts


def write_html(report: Report, path: Path) -> Path:
    rows = "".join(
        f"<tr><th scope='row'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in summary_rows(report)
    )
    routes = "".join(
        f"<tr><td>{html.escape(route)}</td><td>{count}</td></tr>" for route, count in report.routes.items()
    )
    steps = "".join(
        f"<tr><td>{html.escape(s.step)}</td><td>{s.calls}</td><td>{s.p50_ms:.2f}</td>"
        f"<td>{s.p99_ms:.2f}</td><td>{s.retries}</td></tr>"
        for s in report.latency
    )
    figures = "".join(
        f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(title)} chart'>"
        f"<figcaption>{html.escape(title)}</figcaption></figure>"
        for title, data in _charts(report)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<title>bandmaster demo report</title><style>"
        "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;"
        "text-align:left}figure{display:inline-block;margin:.5rem}img{max-width:100%}</style></head><body>"
        f"<h1>Support triage: {html.escape(report.dataset)}</h1>"
        f"<h2>{report.completed}/{report.tickets} tickets</h2>"
        f"<table><caption>Summary</caption>{rows}</table>"
        f"<table><caption>Routes</caption><tr><th>route</th><th>tickets</th></tr>{routes}</table>"
        "<table><caption>Steps</caption><tr><th>step</th><th>calls</th><th>p50 ms</th><th>p99 ms</th>"
        f"<th>retries</th></tr>{steps}</table>{figures}</body></html>"
    )
    return path
