"""The nodes of a declarative graph, as pydantic models (what YAML is validated into).

Every node has an ``id``, an optional ``next`` (the node that runs after it) and an optional
``on_error`` (a fallback edge: where to continue when the node fails after its own policy).
A node that produces a value stores it in the graph state under ``output_key`` (by default its
id), where prompts (``{intent.output}``), conditions (``intent.confidence > 0.85``) and later
nodes read it. The workflow input is in the state under the graph's ``input`` key.

    ai          AIStep      a model call (``bm.call_model``) with a prompt template
    step        Step        a Python callable, ``module:attr`` or registered with the graph
    router      Router      ordered routes with safe-expression conditions, and a default
    parallel    Parallel    branches run at once, their results merged into the state
    map_reduce  MapReduce   chunk a long document, map each chunk with a model, reduce
    human       Human       a durable wait for a person's answer, with a timed default
    end         End         the graph's result (the whole state or some keys)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SkipValidation, field_validator, model_validator

from bandmaster.guard import Guard, GuardSpec
from bandmaster.models import BreakerSpec, RetrySpec

NODE_ID = r"^[A-Za-z_][A-Za-z0-9_]*$"
"""Node ids and state keys are identifiers, so conditions and templates can name them."""

Key = Annotated[str, Field(pattern=NODE_ID)]


class _Node(BaseModel):
    # NaN passes no comparison and is not JSON: `temperature: .nan` is a mistake, as is `.inf`.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    id: Key
    title: str | None = None
    next: str | None = None
    on_error: str | None = None

    def __init__(self, id: str | None = None, /, **data: Any) -> None:
        # Python graphs read better with the id first: AIStep("classify", model=..., ...).
        if id is not None:
            data["id"] = id
        super().__init__(**data)

    @property
    def key(self) -> str | None:
        """The state key this node writes, if it writes one."""
        return None

    def successors(self) -> list[tuple[str, str]]:
        """``(label, node id)`` of every edge leaving this node, in a stable order."""
        edges = []
        if self.next is not None:
            edges.append(("next", self.next))
        if self.on_error is not None:
            edges.append(("on_error", self.on_error))
        return edges


class _Producer(_Node):
    output_key: Key | None = None

    @property
    def key(self) -> str | None:
        return self.output_key or self.id


def _retry_shorthand(value: Any) -> Any:
    return {"attempts": value} if isinstance(value, int) and not isinstance(value, bool) else value


class AIStep(_Producer):
    """A model call. ``model`` is a registry alias or model name; ``prompt`` (and ``system``)
    are templates over the state. The state gets ``{output, text, confidence, model}``.
    Policy fields override the alias's policy from ``models.yaml``. ``guard`` is a guard set
    (``bandmaster.guard._spec.GuardSpec``, the ``guard:`` mapping in YAML) or, in Python, a
    list of ``bm.Guard`` objects."""

    kind: Literal["ai"] = "ai"
    model: str
    prompt: str
    system: str | None = None
    json_schema: dict[str, Any] | None = None
    temperature: float | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    key_by: str | None = None  # template: sticky A/B assignment, e.g. "{ticket.customer_id}"
    timeout: float | None = Field(default=None, gt=0)
    retry: RetrySpec | None = None
    fallback: list[str] | None = None
    breaker: BreakerSpec | None = None
    cache_ttl: float | None = Field(default=None, gt=0)
    # Validated by ``_guards`` alone, so a bad YAML value is reported at its own key
    # (``guard.temperature``), not once per member of the union.
    guard: SkipValidation[GuardSpec | list[Any] | None] = None

    _retry = field_validator("retry", mode="before")(_retry_shorthand)

    @field_validator("guard", mode="before")
    @classmethod
    def _guards(cls, value: Any) -> GuardSpec | list[Any] | None:
        if value is None or isinstance(value, GuardSpec):
            return value
        if isinstance(value, dict):
            return GuardSpec.model_validate(value)
        if isinstance(value, list | tuple) and all(isinstance(item, Guard) for item in value):
            return list(value)
        raise ValueError(
            "a mapping of guard settings (temperature, response_format, banned_topics, ...) or, "
            "in Python, a list of bm.Guard objects"
        )

    @model_validator(mode="after")
    def _fallback_for_guard(self) -> AIStep:
        routes = isinstance(self.guard, GuardSpec) and self.guard.on_violation == "fallback"
        if routes and not self.fallback:
            raise ValueError("guard.on_violation is 'fallback' but the node has no fallback models")
        return self

    def guards(self, resolve: Callable[[str], Callable[..., Any]] | None = None) -> list[Guard]:
        """The guards this node's model call runs (``resolve`` finds a named classifier)."""
        if self.guard is None:
            return []
        return self.guard.guards(resolve) if isinstance(self.guard, GuardSpec) else list(self.guard)


class Step(_Producer):
    """A Python callable as a journaled step, named by ``module:attr`` or by a name registered
    with ``Graph(steps={...})``. With ``inputs`` (parameter -> safe expression over the state)
    it is called with those keyword arguments; without, with a copy of the state."""

    kind: Literal["step"] = "step"
    call: str
    inputs: dict[str, str] | None = None
    timeout: float | None = Field(default=None, gt=0)
    retry: RetrySpec | None = None

    _retry = field_validator("retry", mode="before")(_retry_shorthand)


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    when: str
    to: str
    name: str | None = None


class Router(_Node):
    """The first route whose condition holds wins; else ``default``. The decision is
    journaled (with the values the condition read), so a replay takes the same branch."""

    kind: Literal["router"] = "router"
    routes: list[Route] = Field(default_factory=list)
    default: str | None = None

    @field_validator("routes", mode="before")
    @classmethod
    def _pairs(cls, value: Any) -> Any:
        # Python graphs may write routes=[("intent.confidence > 0.85", "auto_reply"), ...].
        if isinstance(value, list):
            return [
                {"when": item[0], "to": item[1]} if isinstance(item, tuple) and len(item) == 2 else item
                for item in value
            ]
        return value

    def successors(self) -> list[tuple[str, str]]:
        edges = [(route.name or route.when, route.to) for route in self.routes]
        if self.default is not None:
            edges.append(("default", self.default))
        return edges + super().successors()


class Parallel(_Node):
    """Run ``branches`` (ids of ai or step nodes) at once with ``asyncio.gather``;
    each writes its own key. If a branch fails, the others still finish (and are journaled),
    then the node fails with the first failure in branch order."""

    kind: Literal["parallel"] = "parallel"
    branches: list[str] = Field(min_length=1)


class MapReduce(_Producer):
    """A document longer than a model's context window: cut the text ``document`` renders to
    into chunks of tokens, call ``map_model`` on each (``map_prompt`` has ``{chunk}``, and may
    use ``{index}`` and ``{count}``, besides state keys), then ``reduce_model`` over the joined
    answers (``reduce_prompt`` has ``{summaries}``, may use ``{level}``). Runs
    ``bandmaster.graph._mapreduce.map_reduce``: each call is its own journaled model call. The
    state gets ``{output, text, chunks, levels, calls, map_outputs, map_models, cost, usage}``."""

    kind: Literal["map_reduce"] = "map_reduce"
    document: str
    map_model: str
    map_prompt: str
    reduce_model: str | None = None  # default: map_model
    reduce_prompt: str
    collapse_prompt: str | None = None
    context_limit: int = Field(gt=0)  # the map model's window, in tokens
    reduce_context_limit: int | None = Field(default=None, gt=0)
    overlap: int | None = Field(default=None, ge=0)
    concurrency: int = Field(default=4, ge=1)
    key_by: str | None = None
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    timeout: float | None = Field(default=None, gt=0)
    retry: RetrySpec | None = None
    fallback: list[str] | None = None
    breaker: BreakerSpec | None = None
    cache_ttl: float | None = Field(default=None, gt=0)

    _retry = field_validator("retry", mode="before")(_retry_shorthand)


class Human(_Producer):
    """A durable wait for a person (``bm.wait_for``): the run leaves memory until someone sends
    the signal (``bandmaster signal RUN SIGNAL PAYLOAD``, ``engine.signal``). With ``timeout``,
    ``default`` applies when nobody answers in time (without a default, the node fails)."""

    kind: Literal["human"] = "human"
    signal: str | None = None
    timeout: float | None = Field(default=None, gt=0)
    default: Any = None

    @property
    def signal_name(self) -> str:
        return self.signal or self.id

    @property
    def has_default(self) -> bool:
        return "default" in self.model_fields_set


class End(_Node):
    """The end of the graph. ``output`` picks the result: one key, a list of keys, or (when
    omitted) the graph's ``output``, else the whole state."""

    kind: Literal["end"] = "end"
    output: str | list[str] | None = None


Node = Annotated[AIStep | Step | Router | Parallel | MapReduce | Human | End, Field(discriminator="kind")]
AnyNode = AIStep | Step | Router | Parallel | MapReduce | Human | End

RESERVED_KEYS = frozenset({"errors"})
"""State keys the graph itself writes: ``errors`` maps a failed node to its error."""
KINDS = ("ai", "step", "router", "parallel", "map_reduce", "human", "end")
