"""The conformance suite's backends: ``backend`` is an open engine hosting
``wf_conformance.WORKFLOWS``, parametrised over embedded (SQLite) and Temporal (a real dev
server, started once per session). The Temporal side skips, saying why, without the extra."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import wf_conformance as wfs
from conformance_support import BACKENDS, Where, hosting, registry, skip_without_temporal

from bandmaster.engine.backend import Backend
from bandmaster.temporal._devserver import DevServer, free_port


@pytest.fixture(scope="session")
def temporal_dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    folder = tmp_path_factory.mktemp("conformance-temporal")
    server = DevServer(folder / "temporal.db", folder / "server.log", free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """An open backend hosting the conformance workflows (with a worker in this process)."""
    async with hosting(request, tmp_path, wfs.WORKFLOWS, registry()) as opened:
        yield opened


@pytest.fixture(params=BACKENDS)
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Where:
    """A backend for tests with real worker processes (``conformance_support.Where``)."""
    skip_without_temporal(request.param)
    target = request.getfixturevalue("temporal_dev_server").target if request.param == "temporal" else None
    return Where(request.param, tmp_path, target)
