"""``Retrying``: each request given attempts, with retries and a per-attempt timeout."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from bandmaster.calls.wrappers._base import Wrapper
from bandmaster.engine import OpRecord, run_attempts
from bandmaster.models import Model, ModelRequest, ModelResponse
from bandmaster.policies import Retry


class Retrying(Wrapper):
    """Asks ``inner`` until it answers or ``retry`` gives up, each attempt bounded by
    ``timeout`` seconds (``StepTimeout``). ``record``, when given, is where a journaled step
    counts its attempts and keeps their errors (and reports them to the engine's hooks)."""

    __slots__ = ("record", "retry", "timeout")

    def __init__(
        self,
        inner: Model,
        retry: Retry,
        *,
        timeout: float | None = None,
        name: str | None = None,
        record: OpRecord | None = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name if name is None else name
        self.retry = retry
        self.timeout = timeout
        self.record = record

    def request(self, req: ModelRequest) -> Coroutine[Any, Any, ModelResponse]:
        # Not ``async``: run_attempts' coroutine is the request's, one frame less per call.
        ask = self.inner.request
        return run_attempts(
            lambda _attempt: ask(req),
            retry=self.retry,
            timeout=self.timeout,
            name=self.name,
            record=OpRecord() if self.record is None else self.record,
        )
