"""pytest fixtures for bandmaster users, loaded through ``bandmaster.testing`` (entry point
``pytest11``): nothing to configure, they are there once bandmaster is installed.

* ``bm_engine``: an open ``bm.Engine`` (with a worker) on a temporary journal;
  ``bm_engine.path`` is the journal, for ``replay_runs(wf, db=bm_engine.path)``.
* ``scripted_model``: a factory, ``scripted_model({"text": ("label", 0.9)}, name="intent")``
  returns a ``ScriptedModel``.
* ``fake_clock``: a ``FakeClock``.
* ``replay_runs``: ``bandmaster.replay.replay_runs``; its report has ``assert_no_changes()``,
  ``assert_changed(ids)``, ``assert_accuracy(at_least=...)``, ``assert_max_changes(n)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

try:  # async fixtures need pytest-asyncio (strict or auto mode)
    import pytest_asyncio

    _async_fixture: Any = pytest_asyncio.fixture
except ImportError:  # pragma: no cover
    _async_fixture = pytest.fixture


async def _temporary_engine() -> AsyncIterator[Any]:
    from bandmaster.testing import temp_engine

    async with temp_engine() as engine:
        yield engine


_bm_engine = _async_fixture(name="bm_engine")(_temporary_engine)


@pytest.fixture(name="scripted_model")
def _scripted_model() -> Callable[..., Any]:
    from bandmaster.testing import ScriptedModel

    def make(script: Any = None, **options: Any) -> ScriptedModel:
        return ScriptedModel(script, **options)

    return make


@pytest.fixture(name="fake_clock")
def _fake_clock() -> Any:
    from bandmaster.testing import FakeClock

    return FakeClock()


@pytest.fixture(name="replay_runs")
def _replay_runs() -> Callable[..., Any]:
    from bandmaster.replay import replay_runs

    return replay_runs
