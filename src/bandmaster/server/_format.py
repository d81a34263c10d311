"""Numbers as the dashboard shows them: ``$0.000020``, ``1.21 s``, ``2 h 5 min``, ``1,234``,
never ``2e-05`` or ``1.72e+03 ms``. Every page and chart formats through these functions."""

from __future__ import annotations

import math

DASH = "\u2013"  # an en dash: no value


def usd(value: float | None) -> str:
    """Dollars: cents for a cent or more, else two significant digits (``$0.000020``)."""
    if value is None or not math.isfinite(value) or value == 0:
        return DASH
    if value < 0:
        return "-" + usd(-value)
    if value >= 0.01:
        return f"${value:,.2f}"
    if value < 1e-9:
        return "< $0.000000001"
    decimals = 1 - math.floor(math.log10(value))  # two significant digits
    return f"${value:.{decimals}f}"


def plain(value: float | None, digits: int = 3) -> str:
    """A number with about ``digits`` significant digits, thousands separated, no exponent."""
    if value is None or not math.isfinite(value):
        return DASH
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - magnitude)
    text = f"{value:,.{min(decimals, 12)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def count(value: int | float | None) -> str:
    """A whole number with thousands separators (``12,345``)."""
    return DASH if value is None else f"{round(value):,}"


def percent(rate: float | None) -> str:
    """A rate from 0 to 1 as a percentage (``12.5 %``, ``0 %``)."""
    if rate is None or not math.isfinite(rate):
        return DASH
    return f"{plain(rate * 100, 3)} %"


def seconds(value: float | None) -> str:
    """A duration, in the unit that reads best: ``0.42 ms``, ``12 ms``, ``1.21 s``, ``2 min 5 s``,
    ``2 h 5 min``, ``3 d 4 h``."""
    if value is None or not math.isfinite(value):
        return DASH
    if value < 0:
        return "-" + seconds(-value)
    if value < 1:
        ms = value * 1000
        return f"{plain(ms, 3 if ms >= 1 else 2)} ms" if ms > 0 else "0 ms"
    if value < 60:
        return f"{plain(value, 3)} s"
    return human(value)


def human(value: float) -> str:
    """A longer duration in two units, rounded down: ``45 s``, ``2 min 5 s``, ``2 h 5 min``, ``3 d 4 h``."""
    whole = max(0, int(value))
    if whole < 60:
        return f"{whole} s"
    for big, big_size, small, small_size in (
        ("d", 86400, "h", 3600),
        ("h", 3600, "min", 60),
        ("min", 60, "s", 1),
    ):
        if whole >= big_size:
            rest = (whole % big_size) // small_size
            return f"{whole // big_size} {big}" + (f" {rest} {small}" if rest else "")
    return f"{whole} s"  # not reached


def time_left(value: float | None) -> str:
    """What an approval's deadline leaves: ``2 h 5 min``, ``40 s``, or ``due now``."""
    if value is None:
        return "no deadline"
    return "due now" if value < 1 else human(value)


def age(value: float) -> str:
    """How long ago: ``5 s``, ``3 min``, ``2 h 5 min`` (the unit of the two largest parts)."""
    return human(value)


TICK_STEPS = (1, 2, 2.5, 5)


def ticks(span: float, most: int = 6) -> list[float]:
    """Round axis positions from 0 to ``span`` seconds (at most ``most`` + 1): 0, 250 ms, 500 ms..."""
    if span <= 0 or not math.isfinite(span):
        return [0.0]
    raw = span / most
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next((s * magnitude for s in TICK_STEPS if s * magnitude >= raw), 10 * magnitude)
    for minute_step in (60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0):
        if step > 30 and minute_step >= step:  # whole minutes and hours past half a minute
            step = minute_step
            break
    return [n * step for n in range(int(span / step + 1e-9) + 1)]


def cost_text(cost: float, unknown_calls: int) -> str:
    """A sum of costs, honest about calls of unknown price: ``$0.0012``, ``unknown (2 calls of
    unknown price)``, ``at least $0.0012 (1 call of unknown price)``."""
    if not unknown_calls:
        return usd(cost)
    calls = f"{unknown_calls} call{'s' if unknown_calls != 1 else ''} of unknown price"
    return f"at least {usd(cost)} ({calls})" if cost else f"unknown ({calls})"
