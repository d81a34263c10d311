"""Bounds on the formatting a definition may ask for, shared by routing expressions
(``'%.2f' % score``) and prompt templates (``{intent.confidence:.2f}``).

A width or precision is an allocation: ``'%.999999999f' % x`` builds a gigabyte string, and so
does ``{ticket.text:>999999999}``. Every number in a format spec is capped at
``MAX_FORMAT_WIDTH``, except a precision applied to a string, which only truncates it. ``*``
widths (taken from the values at run time) are refused. The checks return a reason, or
``None`` when the spec is fine; the caller raises its own error, naming its rule or field.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MAX_FORMAT_WIDTH", "format_spec_problem", "percent_format_problem"]

MAX_FORMAT_WIDTH = 1000
"""The largest width or precision a format spec may ask for."""

UNKNOWN: Any = object()
"""The value of a field whose type is not known yet (a graph being validated)."""

_ALIGNED = re.compile(r"^(?:.?[<>=^])?", re.DOTALL)  # [[fill]align]: a digit fill is no width
_NUMBER = re.compile(r"(\.?)(\d+)")
_NUMERIC_TYPES = frozenset("bcdeEfFgGnoxX%")
# printf-style: %[(key)][flags][width][.precision][length]type
_PERCENT = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?[-#0 +]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d*))?[hlL]?(?P<type>.?)",
    re.DOTALL,
)


def _over(digits: str) -> bool:
    return len(digits) > len(str(MAX_FORMAT_WIDTH)) or int(digits) > MAX_FORMAT_WIDTH


def format_spec_problem(spec: str, value: Any = UNKNOWN) -> str | None:
    """Why ``format(value, spec)`` may not run, or ``None``. Without ``value`` (validation),
    a large precision is allowed unless the spec's type is numeric: on a string it truncates."""
    aligned = _ALIGNED.match(spec)
    body = spec[aligned.end() :] if aligned else spec
    for match in _NUMBER.finditer(body):
        dot, digits = match.groups()
        if not _over(digits):
            continue
        if dot:
            numeric = body[-1:] in _NUMERIC_TYPES
            if isinstance(value, str) or (value is UNKNOWN and not numeric):
                continue
            what = "precision"
        else:
            what = "width"
        return f"format spec {spec!r} asks for a {what} of {digits}; the limit is {MAX_FORMAT_WIDTH}"
    return None


def percent_format_problem(template: str) -> str | None:
    """Why ``template % values`` may not run (printf-style formatting), or ``None``."""
    for match in _PERCENT.finditer(template):
        if match.group(0) == "%%" or match.group("type") == "%":
            continue
        width, precision, kind = match.group("width"), match.group("precision"), match.group("type")
        if "*" in (width, precision):
            return f"'*' in {match.group(0)!r} takes a width from the values; write the number"
        if width and _over(width):
            return f"{match.group(0)!r} asks for a width of {width}; the limit is {MAX_FORMAT_WIDTH}"
        if precision and _over(precision) and kind not in ("s", "r", "a"):
            return f"{match.group(0)!r} asks for a precision of {precision}; the limit is {MAX_FORMAT_WIDTH}"
    return None
