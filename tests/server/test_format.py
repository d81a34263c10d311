"""The dashboard's one number format and its SVG charts, as pure functions: readable units,
never exponents, user text escaped, retries placed where they happened."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

pytest.importorskip("markupsafe", reason="needs bandmaster[server]")

from bandmaster.engine import StepInfo
from bandmaster.server import _format as fmt
from bandmaster.server._svg import Series, attempt_spans, bars, gantt, over_time

EXPONENT = re.compile(r"\d[eE][+-]?\d")


@pytest.mark.parametrize(
    ("value", "text"),
    [(2e-05, "$0.000020"), (0.00123, "$0.0012"), (0.5, "$0.50"), (1234.5, "$1,234.50"), (0, "\u2013")],
)
def test_usd(value: float, text: str) -> None:
    assert fmt.usd(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.00042, "0.42 ms"),
        (0.012, "12 ms"),
        (1.2134, "1.21 s"),
        (1720.0, "28 min 40 s"),
        (7500.0, "2 h 5 min"),
        (3 * 86400 + 4 * 3600, "3 d 4 h"),
    ],
)
def test_seconds(value: float, text: str) -> None:
    assert fmt.seconds(value) == text


def test_no_number_is_ever_written_with_an_exponent() -> None:
    values = [10.0**k * m for k in range(-9, 9) for m in (1, 1.72, 9.99)]
    for value in values:
        for text in (fmt.usd(value), fmt.seconds(value), fmt.plain(value), fmt.percent(value / 1e9)):
            assert not EXPONENT.search(text), (value, text)
    assert fmt.time_left(7500) == "2 h 5 min"
    assert fmt.time_left(0.4) == "due now"
    assert fmt.count(12345.0) == "12,345"


def test_axis_ticks_are_round_and_cover_the_span() -> None:
    assert fmt.ticks(1.72) == [0.0, 0.5, 1.0, 1.5]
    assert fmt.ticks(7500) == [0.0, 3600.0, 7200.0]
    assert all(len(fmt.ticks(span)) <= 7 for span in (0.003, 0.9, 42.0, 600.0, 86400.0))


def _step(start: datetime, **meta: object) -> StepInfo:
    return StepInfo(
        seq=1,
        name="<b>lookup</b>",
        kind="step",
        status="completed",
        attempts=3,
        started_at=start,
        ended_at=start + timedelta(seconds=2),
        duration=2.0,
        meta=meta,
    )


def test_gantt_places_failed_attempts_and_retries_at_their_times_and_escapes_names() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    t0 = start.timestamp()
    step = _step(start, attempt_failures=[[t0 + 0.5, 0.25], [t0 + 1.0, 0.5]])
    assert attempt_spans(step) == [(t0, t0 + 0.5, t0 + 0.75), (t0 + 0.75, t0 + 1.0, t0 + 1.5)]
    svg = str(gantt([step], start, start + timedelta(seconds=2)))
    assert svg.count('class="failed-attempt"') == 2
    assert svg.count('class="retry"') == 2
    assert "&lt;b&gt;lookup&lt;/b&gt;" in svg
    assert "<b>" not in svg
    assert ">500 ms<" in svg  # the axis, in readable units
    assert not EXPONENT.search(re.sub(r'"[^"]*"', "", svg))  # no exponent in any text
    assert attempt_spans(_step(start, attempt_failures="junk")) == []  # not ours: no marks


def test_charts_escape_labels_and_link_their_points() -> None:
    svg = str(bars("cost", [("<i>m</i>", 2e-05)], fmt.usd, ["/ui/runs?a=1&b=2"]))
    assert "&lt;i&gt;" in svg
    assert "$0.000020" in svg
    assert 'href="/ui/runs?a=1&amp;b=2"' in svg
    at = [datetime(2026, 1, 1, h, tzinfo=UTC) for h in range(3)]
    series = over_time(
        "latency", at, [Series("p50 <x>", [0.1, None, 1.5], "#000", ["/a", None, "/c"])], fmt.seconds
    )
    text = str(series)
    assert "p50 &lt;x&gt;" in text  # the legend
    assert text.count("<a href=") == 2
    assert "1.5 s" in text
