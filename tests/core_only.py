"""Run pytest as if only bandmaster's core were installed, in a venv with every extra.

Every installed package outside the dependency closure of ``bandmaster`` (no extras) and the
test runner fails to import, as it would after ``pip install bandmaster``; only the runner's
own pytest plugins load. ``tests/test_core_only.py`` collects the suite this way, so a test
module that imports an extra without skipping is caught in the usual dev venv:

    python tests/core_only.py --collect-only -q
"""

from __future__ import annotations

import importlib.abc
import importlib.metadata
import os
import re
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

import pytest
from packaging.requirements import Requirement

CORE = ("bandmaster", "pytest", "pytest-asyncio", "pytest-timeout")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def core_distributions() -> set[str]:
    """CORE and what each requires, recursively, leaving out every extra."""
    seen: set[str] = set()
    todo = list(CORE)
    while todo:
        name = canonical(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def blocked_modules(core: set[str]) -> set[str]:
    """Top-level modules installed only by distributions outside ``core``."""
    return {
        module
        for module, dists in importlib.metadata.packages_distributions().items()
        if not any(canonical(dist) in core for dist in dists)
    }


class Blocker(importlib.abc.MetaPathFinder):
    def __init__(self, blocked: set[str]) -> None:
        self.blocked = blocked

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname.partition(".")[0] in self.blocked:
            message = f"No module named {fullname!r} (not in bandmaster's core)"
            raise ModuleNotFoundError(message, name=fullname)
        return None


def core_plugins(core: set[str]) -> list[str]:
    """``-p`` options for the pytest plugins of core distributions (autoload is off)."""
    options = []
    for dist in importlib.metadata.distributions():
        if canonical(dist.metadata["Name"]) in core:
            options += [f"-p{ep.value}" for ep in dist.entry_points if ep.group == "pytest11"]
    return options


def main(args: list[str]) -> int:
    core = core_distributions()
    blocked = blocked_modules(core)
    for name in [name for name in sys.modules if name.partition(".")[0] in blocked]:
        del sys.modules[name]
    sys.meta_path.insert(0, Blocker(blocked))
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    sys.path[0] = os.getcwd()  # as `python -m pytest` has it, rather than this file's folder
    return int(pytest.main([*core_plugins(core), *args]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
