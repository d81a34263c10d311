"""``ResponseCache``: answers kept in the journal store for a while, keyed by request."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from bandmaster.calls.wrappers._base import Wrapper
from bandmaster.engine import Redactor, redact_json
from bandmaster.models import Model, ModelRequest, ModelResponse


class CacheStore(Protocol):
    """Where cached answers live (``SQLiteStore``: every worker on the journal shares them)."""

    def cache_get(self, key: str) -> str | None: ...

    def cache_put(self, key: str, value: str, expires_at: float) -> None: ...


class ResponseCache(Wrapper):
    """Answers a request seen within ``ttl`` seconds from ``store``, else asks ``inner`` and
    keeps its answer. Entries are keyed by ``namespace`` (default: ``inner``'s name) and the
    request's fingerprint. ``read=False`` only writes (a call that must not be answered from
    the cache). ``redactor`` rewrites what is kept: the cache is on disk too. ``notes`` (a
    step's journal meta), when given, gets ``cache_hit=True`` on a hit."""

    __slots__ = ("clock", "namespace", "notes", "read", "redactor", "store", "ttl")

    def __init__(
        self,
        inner: Model,
        store: CacheStore,
        *,
        ttl: float,
        namespace: str | None = None,
        read: bool = True,
        redactor: Redactor | None = None,
        notes: dict[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(inner)
        self.store = store
        self.ttl = ttl
        self.namespace = self.name if namespace is None else namespace
        self.read = read
        self.redactor = redactor
        self.notes = notes
        self.clock = clock

    async def request(self, req: ModelRequest) -> ModelResponse:
        key = f"{self.namespace}:{req.fingerprint()}"
        if self.read:
            cached = self.store.cache_get(key)
            if cached is not None:
                if self.notes is not None:
                    self.notes["cache_hit"] = True
                return ModelResponse.model_validate_json(cached)
        response = await self.inner.request(req)
        kept = response.model_dump_json()
        if self.redactor is not None:
            kept = redact_json(self.redactor, kept) or kept
        self.store.cache_put(key, kept, self.clock() + self.ttl)
        return response
