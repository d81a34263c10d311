"""Reading graph YAML while keeping the line of every key, so errors can point at it.

PyYAML's ``compose`` gives the node tree with source marks; we build the Python values from it
ourselves (scalars through the safe constructor) and record ``path -> line`` for every value,
where a path is the tuple of keys and indices from the top, e.g. ``("nodes", "route",
"routes", 0, "to")``. Duplicate keys, which ``safe_load`` silently collapses, are errors here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from bandmaster.graph.errors import GraphError, Problem

Path = tuple[str | int, ...]


@dataclass(slots=True)
class Lines:
    """Line numbers (1-based) by path; a lookup falls back to the nearest enclosing path."""

    by_path: dict[Path, int] = field(default_factory=dict)

    def of(self, path: Path) -> int | None:
        for end in range(len(path), -1, -1):
            line = self.by_path.get(path[:end])
            if line is not None:
                return line
        return None


def parse_yaml(text: str, *, source: str) -> tuple[Any, Lines]:
    """``(data, lines)`` for one YAML document; malformed YAML is a ``GraphError``."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise GraphError([Problem(source, line, None, f"not valid YAML: {reason}")]) from None
    except yaml.YAMLError as exc:
        raise GraphError([Problem(source, None, None, f"not valid YAML: {exc}")]) from None
    lines = Lines()
    if root is None:
        return None, lines
    problems: list[Problem] = []
    constructor = yaml.SafeLoader("")
    data = _build(root, (), lines, constructor, problems, source)
    if problems:
        raise GraphError(problems)
    return data, lines


def _build(
    node: yaml.Node,
    path: Path,
    lines: Lines,
    constructor: yaml.SafeLoader,
    problems: list[Problem],
    source: str,
) -> Any:
    lines.by_path.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        constructor.flatten_mapping(node)  # `<<: *anchor` merge keys
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = constructor.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) and key is not None:
                problems.append(Problem(source, key_node.start_mark.line + 1, None, "keys must be scalars"))
                continue
            child = (*path, key if isinstance(key, str | int) else str(key))
            if key in result:
                problems.append(
                    Problem(
                        source,
                        key_node.start_mark.line + 1,
                        _node_of(path, key),
                        f"duplicate key {key!r} (first at line {lines.of(child)})",
                    )
                )
                continue
            lines.by_path[child] = key_node.start_mark.line + 1
            result[key] = _build(value_node, child, lines, constructor, problems, source)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(item, (*path, index), lines, constructor, problems, source)
            for index, item in enumerate(node.value)
        ]
    return constructor.construct_object(node, deep=True)


def _node_of(path: Path, key: Any) -> str | None:
    if len(path) >= 2 and path[0] == "nodes":
        return str(path[1])
    if path == ("nodes",):
        return str(key)
    return None
