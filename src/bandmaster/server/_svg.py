"""Inline SVG charts rendered on the server: a run's step timeline (Gantt), bar charts and
charts over time.

No JavaScript and no chart library: the dashboard stays usable offline and on a phone (the
SVGs scale with ``viewBox``). Every text goes through ``markupsafe.escape``, every number
through ``_format``; a bar or a point that stands for runs links to them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

from bandmaster.engine import StepInfo
from bandmaster.server import _format as fmt

STATUS_COLOURS = {
    "completed": "#2e7d32",
    "failed": "#c62828",
    "waiting": "#1565c0",
    "running": "#ef6c00",
}
FAILED = STATUS_COLOURS["failed"]
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
        lines.append(f"duration: {fmt.seconds(step.duration)}")
    for key in ("alias", "version", "model", "fallback"):
        if meta.get(key) not in (None, ""):
            lines.append(f"{key}: {meta[key]}")
    if isinstance(meta.get("cost"), int | float):
        lines.append(f"cost: {fmt.usd(float(meta['cost']))}")
    if isinstance(meta.get("tokens"), dict):
        lines.append(f"tokens: {meta['tokens'].get('input', 0)} in / {meta['tokens'].get('output', 0)} out")
    for error in meta.get("attempt_errors") or []:
        lines.append(f"failed attempt: {error}")
    if step.error:
        lines.append(f"error: {step.error.get('type')}: {step.error.get('message')}")
    return "\n".join(lines)


def attempt_spans(step: StepInfo) -> list[tuple[float, float, float]]:
    """``(start, end, next_start)`` in Unix seconds of each failed attempt, from the journaled
    ``attempt_failures`` (when each failed, the wait after it); empty when none is known."""
    failures = step.meta.get("attempt_failures")
    if not isinstance(failures, list):
        return []
    spans: list[tuple[float, float, float]] = []
    start = step.started_at.timestamp()
    for item in failures:
        if not (isinstance(item, list) and len(item) == 2 and all(isinstance(v, int | float) for v in item)):
            return []  # not ours: draw no marks rather than wrong ones
        ended, delay = float(item[0]), float(item[1])
        spans.append((start, ended, ended + delay))
        start = ended + delay
    return spans


def gantt(steps: Sequence[StepInfo], start: datetime, end: datetime) -> Markup:
    """One bar per journaled operation from its start to its end (open bars run to ``end``),
    on an axis in readable units; failed attempts are red segments of the bar, each retry a
    mark where it started; a fallback answer is outlined."""
    if not steps:
        return Markup('<p class="muted">No journaled operations yet.</p>')
    origin = start.timestamp()
    span = max((end - start).total_seconds(), 1e-3)
    plot = _WIDTH - _LABEL - 20
    height = _ROW * len(steps) + 34

    def x_of(at: float) -> float:
        return _LABEL + plot * min(max(0.0, at - origin), span) / span

    out = [
        f'<svg class="gantt" viewBox="0 0 {_WIDTH} {height}" role="img" '
        f'aria-labelledby="gantt-title" preserveAspectRatio="xMinYMin meet">',
        '<title id="gantt-title">Step timeline: one bar per step, time since the run was created</title>',
    ]
    for tick in fmt.ticks(span):
        x = _LABEL + plot * tick / span
        out.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 22}" class="grid"/>')
        out.append(
            f'<text x="{x:.1f}" y="{height - 8}" class="axis" text-anchor="middle">'
            f"{escape(fmt.seconds(tick) if tick else '0')}</text>"
        )
    for row, step in enumerate(steps):
        y = row * _ROW + 4
        began = step.started_at.timestamp()
        finished = step.ended_at.timestamp() if step.ended_at is not None else origin + span
        x = x_of(began)
        width = max(2.0, x_of(finished) - x)
        colour = STATUS_COLOURS.get(step.status, "#616161")
        outline = ' stroke="#f9a825" stroke-width="3"' if step.meta.get("fallback") else ""
        out.append(f'<g class="bar"><title>{escape(_tooltip(step))}</title>')
        out.append(f'<text x="4" y="{y + 15}" class="label">{escape(_label(step)[:34])}</text>')
        out.append(
            f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{_ROW - 8}" rx="3" '
            f'fill="{colour}"{outline}/>'
        )
        for attempt, (tried, failed, retried) in enumerate(attempt_spans(step), start=1):
            left = x_of(tried)
            out.append(
                f'<rect x="{left:.1f}" y="{y}" width="{max(1.5, x_of(failed) - left):.1f}" '
                f'height="{_ROW - 8}" fill="{FAILED}" class="failed-attempt">'
                f"<title>attempt {attempt} failed after {escape(fmt.seconds(failed - tried))}</title></rect>"
            )
            if retried <= finished + 0.05:  # the sleep's clock and the journal's may differ by ms
                mark = x_of(min(retried, finished))
                gap = mark - x_of(failed)
                if gap > 1:  # the wait before the retry: neither failing nor working
                    out.append(
                        f'<rect x="{x_of(failed):.1f}" y="{y}" width="{gap:.1f}" height="{_ROW - 8}" '
                        f'class="retry-wait"><title>waited {escape(fmt.seconds(retried - failed))} '
                        f"before attempt {attempt + 1}</title></rect>"
                    )
                out.append(
                    f'<line x1="{mark:.1f}" y1="{y - 2}" x2="{mark:.1f}" y2="{y + _ROW - 6}" class="retry">'
                    f"<title>attempt {attempt + 1} at +{escape(fmt.seconds(retried - origin))}</title></line>"
                )
        out.append("</g>")
    out.append("</svg>")
    return Markup("".join(out))


def bars(
    title: str,
    values: Sequence[tuple[str, float]],
    unit: Callable[[float], str] = fmt.plain,
    links: Sequence[str | None] | None = None,
) -> Markup:
    """A horizontal bar chart of labelled values, each written with ``unit`` (a ``_format``
    function) and, with ``links``, linking to what it counts."""
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
        text = (
            f'<text x="4" y="{y + 15}" class="label">{escape(name[:24])}</text>'
            f'<rect x="{label}" y="{y}" width="{width:.1f}" height="{_ROW - 8}" rx="3" class="bar-fill"/>'
            f'<text x="{label + width + 6:.1f}" y="{y + 15}" class="value">{escape(unit(value))}</text>'
        )
        link = links[row] if links is not None else None
        out.append(f'<a href="{escape(link)}">{text}</a>' if link else text)
    out.append("</svg>")
    return Markup("".join(out))


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a chart over time: a value per bucket (None: no data) and a link per bucket."""

    name: str
    values: Sequence[float | None]
    colour: str
    links: Sequence[str | None] = ()


_SERIES_W, _SERIES_H, _LEFT, _BOTTOM = 720, 220, 78, 40


def over_time(
    title: str,
    buckets: Sequence[datetime],
    series: Sequence[Series],
    unit: Callable[[float], str] = fmt.plain,
    stamp: Callable[[datetime], str] = lambda t: t.strftime("%H:%M"),
) -> Markup:
    """A chart of ``series`` over ``buckets`` (start times) with a labelled value axis, time
    labels and a legend; each point links to the runs behind it."""
    known = [v for s in series for v in s.values if v is not None]
    if not buckets or not known:
        return Markup(f'<p class="muted">{escape(title)}: no runs in this window.</p>')
    top = max(known) or 1.0
    plot_w, plot_h = _SERIES_W - _LEFT - 16, _SERIES_H - _BOTTOM - 30
    step = plot_w / max(1, len(buckets) - 1)

    def point(i: int, value: float) -> tuple[float, float]:
        return _LEFT + step * i, 30 + plot_h * (1 - value / top)

    out = [
        f'<svg class="series" viewBox="0 0 {_SERIES_W} {_SERIES_H}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = 30 + plot_h * (1 - fraction)
        out.append(f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_SERIES_W - 16}" y2="{y:.1f}" class="grid"/>')
        out.append(
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">'
            f"{escape(unit(top * fraction) if fraction else '0')}</text>"
        )
    every = max(1, len(buckets) // 6)
    for i, at in enumerate(buckets):
        if i % every == 0:
            x = _LEFT + step * i
            out.append(
                f'<text x="{x:.1f}" y="{_SERIES_H - _BOTTOM + 16}" class="axis" text-anchor="middle">'
                f"{escape(stamp(at))}</text>"
            )
    for s in series:
        points = [(i, v) for i, v in enumerate(s.values) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in (point(i, v) for i, v in points))
            out.append(f'<polyline points="{path}" fill="none" stroke="{s.colour}" stroke-width="2"/>')
        for i, v in points:
            x, y = point(i, v)
            dot = (
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{s.colour}">'
                f"<title>{escape(s.name)} {escape(stamp(buckets[i]))}: {escape(unit(v))}</title></circle>"
            )
            link = s.links[i] if i < len(s.links) else None
            out.append(f'<a href="{escape(link)}">{dot}</a>' if link else dot)
    x = _LEFT
    for s in series:  # the legend, above the plot
        out.append(f'<rect x="{x}" y="6" width="12" height="12" fill="{s.colour}"/>')
        out.append(f'<text x="{x + 16}" y="16" class="label">{escape(s.name)}</text>')
        x += 28 + 8 * len(s.name)
    out.append("</svg>")
    return Markup("".join(out))
