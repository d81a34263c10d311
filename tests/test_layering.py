"""The layering of docs/architecture.md, computed from the source with ``ast``: no room imports
a room above it, the peers of the storage layer stay apart, rooms form no cycle, modules form no
cycle, and no room reaches into another room's private ``_name`` modules.

An import counts wherever it is written: at the top, inside a function, or under
``TYPE_CHECKING``, because each is a dependency a reader has to follow.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

LAYERS: list[set[str]] = [
    {"errors", "_types", "_lazy", "_moved", "format_limits", "yamlfile"},
    {"policies"},
    {"store", "models"},
    {"engine"},
    {"calls", "routing", "guard", "graph", "approvals", "triggers"},
    {"observe", "replay", "testing"},
    {"temporal", "server", "cli", "_wiring"},
]
"""Lowest first. A module imports only from its own layer or below."""

APART = {"store", "models"}
"""Peers that never import each other."""

ROOT_FACE = "bandmaster"
"""``import bandmaster``: the face of every room, allowed to wire any of them."""


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _type_checking_blocks(tree: ast.Module) -> list[ast.If]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
    ]


def _imports(module: str, *, typing_only: bool = True) -> Iterable[str]:
    """The bandmaster modules ``module`` imports. ``from pkg import submodule`` depends on the
    submodule (and not on what the package's face re-exports). ``typing_only=False`` leaves out
    the imports under ``if TYPE_CHECKING:``, which never run."""
    tree = ast.parse(MODULES[module].read_text())
    skipped = (
        set() if typing_only else {id(n) for block in _type_checking_blocks(tree) for n in ast.walk(block)}
    )
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("bandmaster"):
                continue
            submodules = [
                f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES
            ]
            yield from submodules
            if len(submodules) < len(node.names):
                target = _resolve(node.module)
                if target is not None:
                    yield target
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("bandmaster"):
                    target = _resolve(alias.name)
                    if target is not None:
                        yield target


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT_FACE


def layer(name: str) -> int:
    if name == ROOT_FACE:  # the application shells (cli) may read e.g. its __version__
        return len(LAYERS) - 1
    for i, rooms in enumerate(LAYERS):
        if name in rooms:
            return i
    raise AssertionError(f"room {name!r} has no layer: add it to LAYERS and docs/architecture.md")


EDGES: dict[str, set[str]] = {m: {t for t in _imports(m) if t != m} for m in MODULES}
RUNTIME_EDGES: dict[str, set[str]] = {
    m: {t for t in _imports(m, typing_only=False) if t != m} for m in MODULES
}


def _cycles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_every_room_has_a_layer() -> None:
    for module in MODULES:
        if module != ROOT_FACE:
            layer(room(module))


def test_no_room_imports_a_room_above_it() -> None:
    upward = [
        f"{m} -> {t}"
        for m, targets in EDGES.items()
        if m != ROOT_FACE
        for t in targets
        if room(t) != room(m) and (layer(room(t)) > layer(room(m)) or {room(m), room(t)} <= APART)
    ]
    assert not upward, "imports against the layering:\n" + "\n".join(sorted(upward))


def test_rooms_form_no_cycle() -> None:
    rooms: dict[str, set[str]] = defaultdict(set)
    for m, targets in EDGES.items():
        if m != ROOT_FACE:
            rooms[room(m)] |= {room(t) for t in targets if room(t) != room(m)}
    assert _cycles(rooms) == []


def test_modules_form_no_cycle() -> None:
    """Imports that run (a type-only import back into a module is how Python spells a mutual
    reference between two types, and costs a reader nothing to follow)."""
    assert _cycles(RUNTIME_EDGES) == []


def test_no_room_reaches_into_another_rooms_private_modules() -> None:
    reached = [
        f"{m} -> {t}"
        for m, targets in EDGES.items()
        if m != ROOT_FACE
        for t in targets
        if room(t) != room(m) and any(p.startswith("_") and not p.startswith("__") for p in t.split(".")[2:])
    ]
    assert not reached, "import the package face instead:\n" + "\n".join(sorted(reached))


@pytest.mark.parametrize("name", sorted(set().union(*LAYERS)))
def test_each_layered_room_exists(name: str) -> None:
    assert f"bandmaster.{name}" in MODULES, f"LAYERS names {name!r}, which is not a room any more"
