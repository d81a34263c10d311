"""Reading a definition file (a graph, ``models.yaml``) that may be hostile or broken.

Before anything is built from it, a file must be readable, at most ``MAX_BYTES``, UTF-8, valid
YAML, nested at most ``MAX_DEPTH`` levels, and at most ``MAX_NODES`` values once every alias
is expanded: ``&a [*b, *b, *b, ...]`` nine levels deep is a billion values from a few hundred
bytes ("billion laughs"), and an alias inside its own anchor is a structure without end. Each
failure is a ``YamlProblem`` with a line when there is one; the caller wraps it in its own
error, naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "YamlProblem",
    "compose",
    "construct",
    "invalid",
    "read_text",
]

MAX_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 100_000


class YamlProblem(ValueError):
    """What is wrong with a definition file; ``line`` is 1-based, or ``None``."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message, self.line = message, line


def read_text(path: Path) -> str:
    """The text of ``path``: refused when unreadable, too large, or not UTF-8."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise YamlProblem(f"cannot read the file: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise YamlProblem(f"the file is larger than {MAX_BYTES:,} bytes; a definition file is text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise YamlProblem(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); is it a binary "
            f"file? Save it as UTF-8",
            line,
        ) from None


def compose(text: str) -> yaml.Node | None:
    """The YAML node tree of one document, checked for size, depth and expanded size."""
    if len(text) > MAX_BYTES:  # text handed over directly (Graph.from_yaml), not read by read_text
        raise YamlProblem(f"the text is longer than {MAX_BYTES:,} characters; a definition is shorter")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise invalid(exc) from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise YamlProblem(f"nested more than {MAX_DEPTH} levels deep") from None
    if root is not None:
        _check_size(root)
    return root


def construct(node: yaml.Node) -> Any:
    """Python values for a checked node tree (the safe constructor: no custom tags)."""
    try:
        return yaml.SafeLoader("").construct_document(node)
    except (yaml.YAMLError, ValueError, OverflowError) as exc:  # a bad !!timestamp, !!binary...
        raise invalid(exc, node) from None


def invalid(exc: Exception, node: yaml.Node | None = None) -> YamlProblem:
    """``exc`` (from PyYAML or a scalar's constructor) as one line, at its mark or ``node``."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        reason = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        line = mark.line + 1 if mark is not None else None
    else:  # a reader error: "unacceptable character #x0000 ... position 0"
        reason = " ".join(str(exc).split())
        line = None
    if line is None and node is not None:
        line = node.start_mark.line + 1
    return YamlProblem(f"not valid YAML: {reason}", line)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_size(root: yaml.Node) -> None:
    """Count values as if every alias were expanded, without expanding anything: an alias is
    the very node of its anchor, so sizes are summed over a graph, each node once."""
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded size, depth)
    open_nodes: set[int] = set()  # the nodes on the current path, to find an alias to itself
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        line = node.start_mark.line + 1
        if finished:
            open_nodes.discard(key)
            kids = [done[id(kid)] for kid in _children(node)]
            size = 1 + sum(kid[0] for kid in kids)
            depth = 1 + max((kid[1] for kid in kids), default=0)
            if depth > MAX_DEPTH:
                raise YamlProblem(f"nested more than {MAX_DEPTH} levels deep", line)
            if size > MAX_NODES:
                raise YamlProblem(
                    f"more than {MAX_NODES:,} values once its aliases (*name) are expanded; "
                    f"an alias repeated inside repeated aliases multiplies (a 'billion laughs' file)",
                    line,
                )
            done[key] = (size, depth)
            continue
        if key in done:
            continue
        if key in open_nodes:
            raise YamlProblem("an alias (*name) is used inside its own anchor: the value never ends", line)
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((kid, False) for kid in _children(node) if id(kid) not in done)
