"""Prompt templates: ``"Classify this ticket: {ticket.text}"``, filled from the graph state.

Rendering is ``str.format`` with a formatter whose field lookup is ours: a field is a state key
followed by ``.name`` or ``[index]`` parts, resolved on dicts, lists and objects, never reaching
``_private`` or dunder attributes (the classic format-string escape). No ``eval``. Strings go
in as they are; dicts, lists and pydantic models go in as JSON, which is what a model reads best.

Formatting is bounded: widths and precisions within ``MAX_FORMAT_WIDTH`` (checked when the graph
is validated, and again at render time, when a spec may come from the state), format specs
nest one level (``{text:.{limit}}``), and a rendered template is at most ``MAX_RENDERED``
characters.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping, Sequence
from typing import Any, cast

from pydantic import BaseModel

from bandmaster.errors import UsageError
from bandmaster.format_limits import MAX_FORMAT_WIDTH, format_spec_problem

__all__ = ["MAX_FORMAT_WIDTH", "MAX_RENDERED", "TemplateError", "references", "render", "render_partial"]

MAX_RENDERED = 20_000_000
"""The most characters one template may render to (a long document fits; ``{doc}`` written a
million times does not)."""

_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[([^\[\]]+)\]")
_ROOT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TemplateError(UsageError, ValueError):
    """A template is malformed, reads something it may not, or asks for more than the limits."""


def parse_field(field: str) -> tuple[str, list[str | int]]:
    """``"ticket.lines[0].text"`` -> ``("ticket", ["lines", 0, "text"])``."""
    root = _ROOT.match(field)
    if root is None:
        raise TemplateError(f"{{{field}}} must start with a state key (positional fields are not allowed)")
    parts: list[str | int] = []
    position = root.end()
    while position < len(field):
        match = _PART.match(field, position)
        if match is None:
            raise TemplateError(f"cannot read {{{field}}}: expected .name or [index] at {field[position:]!r}")
        name, index = match.group(1), match.group(2)
        if name is not None:
            parts.append(name)
        else:
            parts.append(int(index) if index.lstrip("-").isdigit() else index)
        position = match.end()
    for part in parts:
        if isinstance(part, str) and part.startswith("_"):
            raise TemplateError(f"{{{field}}} reads {part!r}, a private name")
    return root.group(), parts


def _parse(template: str) -> list[tuple[str, str | None, str | None, str | None]]:
    try:
        return list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"malformed template ({exc}); write {{{{ and }}}} for literal braces") from None


def references(template: str, *, nested: bool = False) -> set[str]:
    """The state keys a template reads (raises ``TemplateError`` when it is malformed or asks
    for a width or precision over the limit)."""
    keys: set[str] = set()
    for _literal, field, spec, conversion in _parse(template):
        if field is None:
            continue
        if spec and "{" in spec:
            if nested:
                raise TemplateError(
                    f"{{{field}:{spec}}}: a field inside a format spec has no spec of its own"
                )
            keys |= references(spec, nested=True)
        elif spec:
            problem = format_spec_problem(spec)
            if problem is not None:
                raise TemplateError(f"{{{field}:{spec}}}: {problem}")
        if conversion not in (None, "s", "r"):
            raise TemplateError(f"{{{field}!{conversion}}}: unknown conversion")
        keys.add(parse_field(field)[0])
    return keys


def lookup(state: Mapping[str, Any], root: str, parts: Sequence[str | int]) -> Any:
    """Follow ``parts`` from ``state[root]`` through mappings, sequences and attributes."""
    if root not in state:
        raise KeyError(root)
    value = state[root]
    for part in parts:
        if isinstance(value, Mapping) or (
            isinstance(part, int) and isinstance(value, Sequence) and not isinstance(value, str)
        ):
            value = cast(Any, value)[part]
        elif isinstance(part, str) and not part.startswith("_"):
            value = getattr(value, part)
        else:
            raise KeyError(part)
    return value


def as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    return json.dumps(value, default=str, ensure_ascii=False)


def _value(state: Mapping[str, Any], field: str) -> Any:
    root, parts = parse_field(field)
    try:
        return lookup(state, root, parts)
    except (KeyError, IndexError, AttributeError, TypeError) as exc:
        raise TemplateError(f"{{{field}}}: the state has no value there ({exc!r})") from None


def _fill(state: Mapping[str, Any], field: str, spec: str, conversion: str | None) -> str:
    """The text of one ``{field!conversion:spec}``."""
    value = _value(state, field)
    if conversion == "r":
        value = repr(value)
    elif conversion == "s":
        value = str(value)
    if spec and "{" in spec:  # ``{text:.{limit}}``: the spec itself is filled from the state
        spec = "".join(lit + (as_text(_value(state, f)) if f else "") for lit, f, _, _ in _parse(spec))
    if not spec:
        return as_text(value)
    problem = format_spec_problem(spec, value)
    if problem is not None:
        raise TemplateError(f"{{{field}:{spec}}}: {problem}")
    try:
        return format(value, spec)
    except (ValueError, TypeError) as exc:  # "Unknown format code 'd' for object of type 'str'"
        raise TemplateError(f"{{{field}:{spec}}}: cannot format a {type(value).__name__}: {exc}") from None


def _fields(template: str, state: Mapping[str, Any], keep: frozenset[str], escape: bool) -> str:
    out: list[str] = []
    size = 0
    for literal, field, spec, conversion in _parse(template):
        filled = kept = ""
        if field is not None and parse_field(field)[0] in keep:
            kept = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        elif field is not None:
            filled = _fill(state, field, spec or "", conversion)
        size += len(literal) + len(filled) + len(kept)
        if size > MAX_RENDERED:
            raise TemplateError(
                f"the template renders to more than {MAX_RENDERED:,} characters (at {{{field}}}); "
                f"shorten it, or cut long values with a precision, e.g. {{text:.2000}}"
            )
        out.append((_escape(literal + filled) if escape else literal + filled) + kept)
    return "".join(out)


def render(template: str, state: Mapping[str, Any]) -> str:
    """Fill ``template`` from ``state``."""
    return _fields(template, state, frozenset(), escape=False)


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def render_partial(template: str, state: Mapping[str, Any], keep: frozenset[str]) -> str:
    """Fill the state fields of ``template`` and leave the fields named in ``keep`` (and the
    literal braces) as a ``str.format`` template, for a function that fills those later."""
    return _fields(template, state, keep, escape=True)
