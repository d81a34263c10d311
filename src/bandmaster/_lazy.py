"""Names a package loads on first use (PEP 562), so importing it stays light.

A package lists its lazy names once, imports them under ``if TYPE_CHECKING:`` so type checkers
see the real types, and installs the loader only at run time: a checker that saw a module
``__getattr__`` would type every misspelt name as its return type instead of reporting it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def lazy_loader(
    package: str, lazy: Mapping[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of ``package``, whose names ``lazy`` maps to
    the module that defines each. A loaded name is cached in the package's namespace."""
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> object:
        module = lazy.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(lazy))

    return __getattr__, __dir__
