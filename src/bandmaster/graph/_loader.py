"""Reading graph YAML while keeping the line of every key, so errors can point at it.

PyYAML's ``compose`` gives the node tree with source marks; we build the Python values from it
ourselves (scalars through the safe constructor) and record ``path -> line`` for every value,
where a path is the tuple of keys and indices from the top, e.g. ``("nodes", "route",
"routes", 0, "to")``. Duplicate keys, which ``safe_load`` silently collapses, are errors here.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field
from typing import Any

import yaml

from bandmaster.graph._errors import GraphError, Problem
from bandmaster.yamlfile import YamlProblem, compose, invalid, read_text

Path = tuple[str | int, ...]
_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


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
    """``(data, lines)`` for one YAML document; malformed or oversized YAML is a ``GraphError``
    (the limits are those of ``bandmaster.yamlfile``)."""
    lines = Lines()
    problems: list[Problem] = []
    try:
        root = compose(text)
        if root is None:
            return None, lines
        data = _build(root, (), lines, yaml.SafeLoader(""), problems, source)
    except YamlProblem as exc:
        raise GraphError([Problem(source, exc.line, None, exc.message)]) from None
    if problems:
        raise GraphError(problems)
    return data, lines


def read_graph_file(path: pathlib.Path) -> str:
    """The text of a graph file; an unreadable, oversized or binary file is a ``GraphError``."""
    try:
        return read_text(path)
    except YamlProblem as exc:
        raise GraphError([Problem(str(path), exc.line, None, exc.message)]) from None


def _build(
    node: yaml.Node,
    path: Path,
    lines: Lines,
    constructor: yaml.SafeLoader,
    problems: list[Problem],
    source: str,
) -> Any:
    lines.by_path.setdefault(path, node.start_mark.line + 1)
    if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_TAGS:  # `x: !!python/object {}`
        raise YamlProblem(f"tag {node.tag!r} is not allowed; write a plain mapping or list", lines.of(path))
    if isinstance(node, yaml.MappingNode):
        try:
            constructor.flatten_mapping(node)  # `<<: *anchor` merge keys
        except yaml.YAMLError as exc:  # `<<: 5`
            raise invalid(exc, node) from None
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, constructor)
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
    return _scalar(node, constructor)


def _scalar(node: yaml.Node, constructor: yaml.SafeLoader) -> Any:
    try:
        return constructor.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, OverflowError) as exc:  # !!python/object, a bad !!timestamp
        raise invalid(exc, node) from None


def _node_of(path: Path, key: Any) -> str | None:
    if len(path) >= 2 and path[0] == "nodes":
        return str(path[1])
    if path == ("nodes",):
        return str(key)
    return None
