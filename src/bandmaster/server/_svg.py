"""Inline SVG charts rendered on the server: a run's step timeline (Gantt) and bar charts.

No JavaScript and no chart library: the dashboard stays usable offline and on a phone (the
SVGs scale with ``viewBox``). Every text goes through ``markupsafe.escape``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from markupsafe import Markup, escape

from bandmaster.engine import StepInfo

STATUS_COLOURS = {
    "completed": "#2e7d32",
    "failed": "#c62828",
    "waiting": "#1565c0",
    "running": "#ef6c00",
}
_WIDTH = 960
_LABEL = 220
_ROW = 26
_BARS_WIDTH = 560


def _label(step: StepInfo) -> str:
    meta = step.meta
    parts = [f"{step.seq} {step.name}"]
    if meta.get("model"):
        parts.append(f"→ {meta['model']}")
    return " ".join(parts)


def _tooltip(step: StepInfo) -> str:
    meta = step.meta
    lines = [f"{step.name} ({step.kind}) {step.status}", f"attempts: {step.attempts}"]
    if step.duration is not None:
        lines.append(f"duration: {step.duration * 1000:.1f} ms")
    for key in ("alias", "version", "model", "fallback", "cost"):
        if meta.get(key) not in (None, ""):
            lines.append(f"{key}: {meta[key]}")
    if isinstance(meta.get("tokens"), dict):
        lines.append(f"tokens: {meta['tokens'].get('input', 0)} in / {meta['tokens'].get('output', 0)} out")
    if step.error:
        lines.append(f"error: {step.error.get('type')}: {step.error.get('message')}")
    return "\n".join(lines)


def gantt(steps: Sequence[StepInfo], start: datetime, end: datetime) -> Markup:
    """One bar per journaled operation from its start to its end (open bars run to ``end``);
    failed attempts are ticks on the bar, a fallback answer is outlined."""
    if not steps:
        return Markup('<p class="muted">No journaled operations yet.</p>')
    span = max((end - start).total_seconds(), 1e-3)
    plot = _WIDTH - _LABEL - 20
    height = _ROW * len(steps) + 30
    out = [
        f'<svg class="gantt" viewBox="0 0 {_WIDTH} {height}" role="img" '
        f'aria-labelledby="gantt-title" preserveAspectRatio="xMinYMin meet">',
        '<title id="gantt-title">Step timeline: one bar per step from start to end</title>',
    ]
    for tick in range(5):
        x = _LABEL + plot * tick / 4
        out.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 20}" class="grid"/>')
        out.append(
            f'<text x="{x:.1f}" y="{height - 5}" class="axis" text-anchor="middle">'
            f"{span * tick / 4 * 1000:.3g} ms</text>"
        )
    for row, step in enumerate(steps):
        y = row * _ROW + 4
        began = (step.started_at - start).total_seconds()
        finished = (step.ended_at - start).total_seconds() if step.ended_at is not None else span
        x = _LABEL + plot * max(0.0, began) / span
        width = max(2.0, plot * max(0.0, finished - began) / span)
        colour = STATUS_COLOURS.get(step.status, "#616161")
        outline = ' stroke="#f9a825" stroke-width="3"' if step.meta.get("fallback") else ""
        out.append(f'<g class="bar"><title>{escape(_tooltip(step))}</title>')
        out.append(f'<text x="4" y="{y + 15}" class="label">{escape(_label(step)[:34])}</text>')
        out.append(
            f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{_ROW - 8}" rx="3" '
            f'fill="{colour}"{outline}/>'
        )
        for attempt in range(1, step.attempts):
            tick_x = x + width * attempt / step.attempts
            out.append(
                f'<line x1="{tick_x:.1f}" y1="{y}" x2="{tick_x:.1f}" y2="{y + _ROW - 8}" class="attempt"/>'
            )
        out.append("</g>")
    out.append("</svg>")
    return Markup("".join(out))


def bars(title: str, values: Sequence[tuple[str, float]], unit: str = "") -> Markup:
    """A horizontal bar chart of labelled values."""
    if not values:
        return Markup(f'<p class="muted">{escape(title)}: no data yet.</p>')
    top = max(v for _, v in values) or 1.0
    height = _ROW * len(values) + 10
    # Narrower than the timeline, so labels stay readable when a phone scales the chart down.
    label, plot = 170, _BARS_WIDTH - 170 - 110
    out = [
        f'<svg class="bars" viewBox="0 0 {_BARS_WIDTH} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for row, (name, value) in enumerate(values):
        y = row * _ROW + 4
        width = max(1.0, plot * value / top)
        out.append(f'<text x="4" y="{y + 15}" class="label">{escape(name[:24])}</text>')
        out.append(
            f'<rect x="{label}" y="{y}" width="{width:.1f}" height="{_ROW - 8}" rx="3" class="bar-fill"/>'
        )
        out.append(
            f'<text x="{label + width + 6:.1f}" y="{y + 15}" class="value">{value:.4g}{escape(unit)}</text>'
        )
    out.append("</svg>")
    return Markup("".join(out))
