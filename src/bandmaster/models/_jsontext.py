"""Finding the JSON value in a model's text answer.

Models asked for JSON often wrap it: a Markdown fence (```json ... ```), a sentence before
("Here is the result:") or after, sometimes both. ``extract_json`` accepts, in this order:

1. the whole text (stripped) as JSON;
2. the body of each fenced block, ``json``-labelled blocks first;
3. the first complete JSON object that starts at a ``{`` in the text, else the first array
   at a ``[`` (prose brackets that do not start valid JSON, like "[1]" before an object, are
   skipped).

It never repairs JSON (trailing commas, single quotes, comments stay errors): a repaired
answer is a guess, and a re-ask with the error is the honest fix. Standard library only.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["JsonNotFound", "extract_json"]

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[^\n`]*\n(.*?)```", re.DOTALL)
_MAX_STARTS = 256  # bounds the scan on long prose full of brackets
_DECODER = json.JSONDecoder()
_JSON_STARTS = frozenset('{["-0123456789tfn')


class JsonNotFound(ValueError):
    """No JSON value could be read from the text; the message says what was tried."""


def extract_json(text: str) -> Any:
    """The JSON value in ``text`` (see the module doc for what is tolerated).

    Raises ``JsonNotFound`` with the most useful decoding error (the one that got furthest
    into a candidate) when there is none.
    """
    body = text.strip().lstrip("\ufeff")
    if not body:
        raise JsonNotFound("the answer is empty")
    # The error that got furthest into its candidate is the one worth showing.
    best: json.JSONDecodeError | None = None
    best_progress = -1

    def keep(exc: json.JSONDecodeError, progress: int) -> None:
        nonlocal best, best_progress
        if progress > best_progress:
            best, best_progress = exc, progress

    def attempt(candidate: str) -> tuple[bool, Any]:
        try:
            return True, json.loads(candidate)
        except json.JSONDecodeError as exc:
            keep(exc, exc.pos)
            return False, None

    if body[0] in _JSON_STARTS:  # prose ("Here is...") cannot be JSON: skip a costly failure
        ok, value = attempt(body)
        if ok:
            return value
    fences = sorted(_FENCE.finditer(body), key=lambda m: m.group(1).lower() != "json")
    for fence in fences:
        ok, value = attempt(fence.group(2).strip())
        if ok:
            return value
    for start in _starts(body):
        try:
            value, _end = _DECODER.raw_decode(body, start)
        except json.JSONDecodeError as exc:  # positions are in the whole answer
            keep(exc, exc.pos - start)
            continue
        return value
    if best is None or not any(ch in body for ch in "{["):
        raise JsonNotFound("no JSON object or array in the answer")
    raise JsonNotFound(f"no valid JSON in the answer: {best.msg} (line {best.lineno} column {best.colno})")


def _starts(text: str) -> list[int]:
    objects = [i for i, ch in enumerate(text) if ch == "{"][:_MAX_STARTS]
    arrays = [i for i, ch in enumerate(text) if ch == "["][:_MAX_STARTS]
    return objects + arrays
