"""``TemporalEngine.models``: the model desk of the Temporal backend (describe, history,
switch), with the embedded desk's methods and errors, over the registry workflow of the task
queue (temporal/model_registry.py). Aliases are described from the workers' registry, so a
client needs no ``models.yaml`` of its own; a worker of the task queue must be running."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from temporalio.client import Client, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from bandmaster.engine.backend import AliasState
from bandmaster.errors import BackendUnavailable, InvalidInput, RegistryError, UnknownModel, UsageError
from bandmaster.temporal._model_registry import (
    CHANGED,
    DESCRIBE_QUERY,
    HISTORY_MEMO,
    PREVIEW_QUERY,
    SWITCH_UPDATE,
    ensure_registry,
    registry_id,
)

TIMEOUT = 10.0
"""Seconds a desk call waits for a worker to answer."""
ATTEMPTS = 5
"""Switches tried when another switch lands between preview and store."""
_ERRORS: dict[str, type[UsageError]] = {"UnknownModel": UnknownModel, "RegistryError": RegistryError}


class ModelsHost(Protocol):
    """What the desk needs of its engine (a ``TemporalEngine``)."""

    @property
    def client(self) -> Client: ...

    @property
    def task_queue(self) -> str: ...


class TemporalModels:
    """The model desk of a ``TemporalEngine``: ``engine.models``."""

    def __init__(
        self,
        engine: ModelsHost,
        *,
        timeout: float = TIMEOUT,
        after_switch: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.engine = engine
        self.timeout = timeout
        self.after_switch = after_switch  # the engine's own worker adopts a switch before it returns

    async def describe(self) -> builtins.list[AliasState]:
        """Every alias of the workers' registry, with overrides and breaker states applied."""
        rows = await self._ask(DESCRIBE_QUERY)
        return [_alias_state(row) for row in rows]

    async def history(self, alias: str) -> builtins.list[dict[str, Any]]:
        """The alias's switches, newest first: ``{"spec", "changed_at", "changed_by"}`` (the
        registry workflow's memo: no worker is asked)."""
        client, task_queue = self.engine.client, self.engine.task_queue
        await ensure_registry(client, task_queue)
        memo = await (await client.get_workflow_handle(registry_id(task_queue)).describe()).memo()
        changes = (memo.get(HISTORY_MEMO) or {}).get(alias, [])
        if not changes and alias not in {a.alias for a in await self.describe()}:
            raise UnknownModel(f"no alias {alias!r} in the workers' registry; describe() lists the aliases")
        return list(reversed(changes))

    async def switch(
        self,
        alias: str,
        *,
        versions: dict[str, str] | None = None,
        weights: dict[str, float] | None = None,
        by: str,
    ) -> AliasState:
        """Validate the change against the workers' registry (``UnknownModel``,
        ``RegistryError``), store it, and answer the alias as it now is; every worker adopts it
        within a second."""
        if not isinstance(by, str) or not by.strip():
            raise InvalidInput(f"switch(by={by!r}): say who switches (it is kept in the history)")
        request = {"alias": alias, "versions": versions, "weights": weights}
        for _ in range(ATTEMPTS):
            preview = await self._ask(PREVIEW_QUERY, request)
            if "error" in preview:
                error = preview["error"]
                raise _ERRORS.get(error["type"], RegistryError)(error["message"])
            change = {"alias": alias, "spec": preview["spec"], "by": by, "rev": preview["rev"]}
            try:
                row = await self._ask(SWITCH_UPDATE, change, update=True)
            except WorkflowUpdateFailedError as exc:
                cause = exc.cause
                if isinstance(cause, ApplicationError) and cause.type == CHANGED:
                    continue  # another switch landed in between: preview again
                if isinstance(cause, ApplicationError):
                    raise _ERRORS.get(cause.type or "", RegistryError)(cause.message) from None
                raise
            if self.after_switch is not None:
                await self.after_switch()
            return _alias_state(row)
        raise RegistryError(
            f"alias {alias!r} kept changing while it was being switched ({ATTEMPTS} tries); try again"
        )

    async def _ask(self, name: str, arg: Any = None, *, update: bool = False) -> Any:
        """The query (or ``update``) ``name`` of the registry workflow, started first if need
        be; a worker must answer within ``timeout``."""
        client, task_queue = self.engine.client, self.engine.task_queue
        await ensure_registry(client, task_queue)
        handle = client.get_workflow_handle(registry_id(task_queue))
        try:
            async with asyncio.timeout(self.timeout):
                args = [] if arg is None else [arg]
                if update:
                    return await handle.execute_update(name, args=args)
                return await handle.query(name, args=args)
        except TimeoutError:
            raise BackendUnavailable(
                f"no worker answered for the model registry within {self.timeout:g}s; is a "
                f"`bandmaster worker --backend temporal` serving task queue {task_queue!r}?"
            ) from None
        except (WorkflowQueryFailedError, RPCError) as exc:
            if "hosts no model registry" in str(exc):
                raise RegistryError(str(exc)) from None
            raise


def _alias_state(row: dict[str, Any]) -> AliasState:
    """An ``AliasState`` from the registry workflow's answer (fields it does not have yet, e.g.
    from a newer worker, are left out)."""
    known = set(AliasState.__dataclass_fields__)
    return AliasState(**{k: v for k, v in row.items() if k in known})
