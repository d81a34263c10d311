"""Prompt templates: ``"Classify this ticket: {ticket.text}"``, filled from the graph state.

Rendering is ``str.format`` with a formatter whose field lookup is ours: a field is a state key
followed by ``.name`` or ``[index]`` parts, resolved on dicts, lists and objects, never reaching
``_private`` or dunder attributes (the classic format-string escape). No ``eval``. Strings go
in as they are; dicts, lists and pydantic models go in as JSON, which is what a model reads best.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping, Sequence
from typing import Any, cast

from pydantic import BaseModel

_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[([^\[\]]+)\]")
_ROOT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TemplateError(ValueError):
    """A template is malformed or reads something it may not."""


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


def references(template: str) -> set[str]:
    """The state keys a template reads (raises ``TemplateError`` when it is malformed)."""
    keys: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"malformed template ({exc}); write {{{{ and }}}} for literal braces") from None
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if spec and "{" in spec:
            keys |= references(spec)
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


class _Formatter(string.Formatter):
    def get_field(self, field_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        root, parts = parse_field(field_name)
        try:
            return lookup(kwargs, root, parts), root
        except (KeyError, IndexError, AttributeError, TypeError) as exc:
            raise TemplateError(f"{{{field_name}}}: the state has no value there ({exc!r})") from None

    def format_field(self, value: Any, format_spec: str) -> str:
        if format_spec:
            return format(value, format_spec)
        return as_text(value)

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion == "r":
            return repr(value)
        if conversion == "s":
            return str(value)
        return value


_FORMATTER = _Formatter()


def render(template: str, state: Mapping[str, Any]) -> str:
    """Fill ``template`` from ``state``."""
    return _FORMATTER.vformat(template, (), state)


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def render_partial(template: str, state: Mapping[str, Any], keep: frozenset[str]) -> str:
    """Fill the state fields of ``template`` and leave the fields named in ``keep`` (and the
    literal braces) as a ``str.format`` template, for a function that fills those later."""
    out: list[str] = []
    for literal, field, spec, conversion in string.Formatter().parse(template):
        out.append(_escape(literal))
        if field is None:
            continue
        if parse_field(field)[0] in keep:
            out.append(
                "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            )
            continue
        value, _ = _FORMATTER.get_field(field, (), state)
        value = _FORMATTER.convert_field(value, conversion)
        if spec and "{" in spec:
            spec = _FORMATTER.vformat(spec, (), state)
        out.append(_escape(_FORMATTER.format_field(value, spec or "")))
    return "".join(out)
