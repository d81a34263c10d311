"""A RabbitMQ broker per test module (skipped with the reason when it is not installed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .rabbit import Rabbit, rabbit_missing, start_rabbit


@pytest.fixture(scope="module")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rabbit]:
    missing = rabbit_missing()
    if missing is not None:
        pytest.skip(missing)
    broker = start_rabbit(tmp_path_factory.mktemp("rabbit"))
    try:
        yield broker
    finally:
        broker.stop()
