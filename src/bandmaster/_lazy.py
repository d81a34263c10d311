"""Names a package loads on first use (PEP 562), so importing it stays light.

A package lists its lazy names once, imports them under ``if TYPE_CHECKING:`` so type checkers
see the real types, and installs the loader only at run time: a checker that saw a module
``__getattr__`` would type every misspelt name as its return type instead of reporting it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any, NoReturn


class MissingExtra(type):
    """The type of a stand-in for a name whose extra is not installed. ``from bandmaster
    import *`` still works; making or using the name raises the ImportError that says what to
    install."""

    error: str

    def __call__(cls, *args: Any, **kwargs: Any) -> NoReturn:
        raise ImportError(cls.error)

    def __getattr__(cls, name: str) -> NoReturn:
        raise ImportError(cls.error)

    def __repr__(cls) -> str:
        return f"<{cls.__name__}: {cls.error}>"


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
        try:
            value = getattr(importlib.import_module(module), name)
        except ImportError as exc:  # an extra is missing: not cached, so installing it works
            return MissingExtra(name, (), {"error": str(exc), "__module__": package})
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(lazy))

    return __getattr__, __dir__
