"""``ResponseCache`` on a real journal store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.wrappers.helpers import Scripted

import bandmaster as bm
from bandmaster.calls.wrappers import ResponseCache
from bandmaster.store._sqlite import SQLiteStore


async def ask(cache: ResponseCache, text: str) -> bm.ModelResponse:
    response = await cache.request(bm.ModelRequest(input=text))
    await asyncio.sleep(0)  # the store commits its writes in a batch on the next loop turn
    return response


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "journal.db")
    try:
        yield store
    finally:
        store.close()


async def test_the_same_request_is_answered_from_the_cache(store: SQLiteStore) -> None:
    model, notes = Scripted("m"), dict[str, Any]()
    cache = ResponseCache(model, store, ttl=600, notes=notes)
    first = await ask(cache, "hello")
    assert notes == {}
    second = await ask(cache, "hello")
    assert second == first
    assert model.calls == 1
    assert notes == {"cache_hit": True}


async def test_another_request_or_another_namespace_misses(store: SQLiteStore) -> None:
    model = Scripted("m")
    await ask(ResponseCache(model, store, ttl=600), "hello")
    await ask(ResponseCache(model, store, ttl=600), "bye")
    await ask(ResponseCache(model, store, ttl=600, namespace="v2"), "hello")
    assert model.calls == 3


async def test_an_expired_answer_is_asked_again(store: SQLiteStore) -> None:
    model = Scripted("m")
    past = time.time() - 3600  # kept an hour ago with a ttl of a minute
    await ask(ResponseCache(model, store, ttl=60, clock=lambda: past), "hello")
    await ask(ResponseCache(model, store, ttl=60), "hello")
    assert model.calls == 2


async def test_read_false_only_writes(store: SQLiteStore) -> None:
    model = Scripted("m")
    await ask(ResponseCache(model, store, ttl=600), "hello")
    notes: dict[str, Any] = {}
    await ask(ResponseCache(model, store, ttl=600, read=False, notes=notes), "hello")
    assert model.calls == 2
    assert notes == {}
