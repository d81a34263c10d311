"""Old module paths keep resolving: journals and Temporal histories written before a module
moved name error types, redactors and guards by those paths."""

from __future__ import annotations

import importlib.util

import pytest

from bandmaster._moved import MOVED, import_module
from bandmaster.engine.backend_kit import rebuild_error


@pytest.mark.parametrize("old", sorted(MOVED))
def test_each_old_path_leads_to_its_new_module(old: str) -> None:
    new = MOVED[old]
    if importlib.util.find_spec(new.rsplit(".", 1)[0]) is None:
        pytest.skip(f"{new} is not importable here")
    try:
        module = import_module(old)
    except ImportError as exc:  # a module whose extra is not installed: same error either way
        with pytest.raises(ImportError):
            importlib.import_module(new)
        pytest.skip(str(exc))
    assert module.__name__ == new


def test_an_error_recorded_under_an_old_path_is_rebuilt_as_itself() -> None:
    from bandmaster.graph import GraphError

    error = rebuild_error({"type": "bandmaster.graph.errors.GraphError", "message": "node n1: bad"})
    assert type(error) is GraphError


def test_an_unknown_module_still_fails() -> None:
    with pytest.raises(ModuleNotFoundError):
        import_module("bandmaster.no_such_module")
