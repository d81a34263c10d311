"""Fixtures for the e2e tests (see harness.py). Every worker a test starts is killed and
reaped at teardown, so no test leaves a process behind, even when it fails half-way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from .harness import Journal, Workers, load_wf_chain


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "journal.db"


@pytest.fixture
def side_log(tmp_path: Path) -> Path:
    return tmp_path / "effects.log"


@pytest.fixture
def workers(tmp_path: Path, db: Path, side_log: Path) -> Iterator[Workers]:
    manager = Workers(tmp_path, db, side_log)
    try:
        yield manager
    finally:
        manager.cleanup()


@pytest.fixture(scope="session")
def wf() -> ModuleType:
    return load_wf_chain()


@pytest.fixture
def journal(db: Path) -> Journal:
    return Journal(db)
