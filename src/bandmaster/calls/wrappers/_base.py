"""What every policy wrapper shares: it is a ``Model`` that answers by asking the model it holds.

Policies wrap models instead of being spelled out inside ``bm.call_model``: a wrapper takes a
``Model``, adds one policy, and is itself a ``Model`` (``name`` and ``async request``), so any
number of them compose, and a new policy is one new class.
"""

from __future__ import annotations

from bandmaster.models import Model, ModelRequest, ModelResponse


class Wrapper:
    """A ``Model`` around ``inner``: it has ``inner``'s name and, unless a subclass adds its
    policy in ``request``, answers as ``inner`` does."""

    __slots__ = ("inner", "name")

    def __init__(self, inner: Model, *, name: str | None = None) -> None:
        self.inner = inner
        self.name = inner.name if name is None else name

    async def request(self, req: ModelRequest) -> ModelResponse:
        return await self.inner.request(req)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"


def innermost(model: Model) -> Model:
    """The model at the centre of any wrappers: the one that actually answers (its attributes,
    such as ``provider``, describe who served a call)."""
    while isinstance(model, Wrapper):
        model = model.inner
    return model
