"""``@needs("plot", "matplotlib")``: skip a test when a bandmaster extra it needs is missing,
saying which, so the suite runs with only the core installed (see core_only.py)."""

from __future__ import annotations

import importlib.util

import pytest


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a dotted name whose parent package is missing
        return False


def needs(extra: str, *modules: str) -> pytest.MarkDecorator:
    """A skip mark unless every module (of ``bandmaster[extra]``) can be imported."""
    missing = [module for module in modules if not installed(module)]
    return pytest.mark.skipif(
        bool(missing), reason=f"needs bandmaster[{extra}] ({', '.join(missing)} missing)"
    )


# What `bandmaster demo` imports: bandmaster[demo] = sklearn, plot, pii, guard.
DEMO = ("sklearn", "matplotlib", "presidio_analyzer", "jsonschema")
