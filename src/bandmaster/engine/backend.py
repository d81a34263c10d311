"""The dispatch point for other execution backends (Temporal).

The embedded engine executes journaled operations itself (``operation.py``,
``operations.py``). A backend that runs workflow code on another engine sets
``current_backend`` for the duration of a run, and every journaled operation called in that
run is handed to it instead. The engine never imports a backend's SDK: backends implement this
protocol from above (``bandmaster.temporal``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

if TYPE_CHECKING:
    from bandmaster.engine.serde import Codec
    from bandmaster.engine.step import Step


class OperationBackend(Protocol):
    """Executes the journaled operations of one run. ``step`` and ``call_model`` are called
    synchronously when the operation is *called*, so they can number it by call order; they
    return the awaitable the workflow awaits."""

    def step(self, step: Step[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Awaitable[Any]: ...

    def call_model(self, target: str, input: Any, options: dict[str, Any]) -> Awaitable[Any]: ...

    def sleep(self, seconds: float) -> Awaitable[None]: ...

    def wait_for(self, name: str, timeout: float | None, default: Any, codec: Codec) -> Awaitable[Any]: ...

    def approval(
        self,
        name: str,
        payload: Any,
        *,
        timeout: float | None,
        default: str | None,
        notify: Sequence[object],
        approvers: Sequence[str] | None,
    ) -> Awaitable[Any]: ...
    def record(self, name: str, kind: str, output: Any, meta: dict[str, Any]) -> None:
        """Journal a decision the workflow code made itself (a router's route, kind
        ``route``): the next sequence number, completed at once with ``output``."""
        ...

    def now(self) -> datetime: ...

    def uuid(self) -> UUID: ...

    def random(self) -> float: ...


current_backend: ContextVar[OperationBackend | None] = ContextVar("bandmaster_backend", default=None)
"""Set by a backend while it runs workflow code; ``None`` on the embedded engine."""
