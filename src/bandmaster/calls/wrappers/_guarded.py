"""``Guarded``: a model whose answers must pass guards, re-asked when they do not."""

from __future__ import annotations

from collections.abc import Sequence

from bandmaster.calls.wrappers._base import Wrapper
from bandmaster.guard import Guard, GuardLog, ask
from bandmaster.models import Model, ModelRequest, ModelResponse


class Guarded(Wrapper):
    """Asks ``inner`` until an answer passes every guard's ``check_output`` or the re-asks run
    out (``OutputValidationFailed``); a violation is raised as ``GuardViolation``. ``log``
    collects each ask and violation (a step's journal meta shows it as ``guard``). Input checks
    are the caller's: they run once per call, before any model is chosen."""

    __slots__ = ("guards", "log")

    def __init__(self, inner: Model, guards: Sequence[Guard], *, log: GuardLog | None = None) -> None:
        self.inner, self.name = inner, inner.name
        self.guards = tuple(guards)
        self.log = GuardLog() if log is None else log

    async def request(self, req: ModelRequest) -> ModelResponse:
        return await ask(self.guards, req, self.inner.request, model=self.name, log=self.log)
