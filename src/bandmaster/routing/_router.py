"""``bm.Router``: ordered rules over the input and earlier results; the first that holds wins.

    router = bm.Router(default="human")
    router.add_route("intent.label == 'billing' and intent.confidence > 0.9", "auto_reply")
    router.add_route(lambda v: len(v["text"]) > 500, "long_form", name="long")
    decision = router.decide(intent=intent, text=ticket.text)   # journaled inside a workflow

Inside a workflow a decision is journaled (kind ``route``) with the rule that matched and the
values that rule read, so a replay takes the same branch and ``runs show`` explains why.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from bandmaster.engine import ANY, codec_for, journaling
from bandmaster.engine.backend import current_backend
from bandmaster.errors import BandmasterError, UsageError
from bandmaster.routing._expr import Expression, ExpressionError

Condition = str | Callable[[Mapping[str, Any]], bool]


class RouteDecision(BaseModel):
    route: str  # the target of the rule that matched (or the default / escalation)
    rule: str | None  # the rule's name; None for the default
    values: dict[str, Any] = {}  # what the matching rule read (expressions: the names they use)


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    target: str
    expression: Expression | None
    predicate: Callable[[Mapping[str, Any]], bool] | None

    def holds(self, values: Mapping[str, Any], router: str) -> bool:
        if self.expression is not None:
            try:
                result = self.expression.evaluate(values)
            except ExpressionError as exc:
                raise exc.in_router(router) from exc.__cause__
        else:
            assert self.predicate is not None
            try:
                result = self.predicate(values)
            except BandmasterError:
                raise
            except Exception as exc:  # a KeyError in a lambda says nothing of which rule
                raise UsageError(
                    f"router {router!r}: rule {self.name!r} failed: {type(exc).__name__}: {exc}"
                ) from exc
        try:
            return bool(result)
        except Exception as exc:  # an object with no truth value (a numpy array)
            raise UsageError(
                f"router {router!r}: rule {self.name!r} gave a {type(result).__name__}, which is "
                f"neither true nor false ({exc}); make the condition a comparison"
            ) from exc

    def seen(self, values: Mapping[str, Any]) -> dict[str, Any]:
        names = self.expression.names if self.expression is not None else set(values)
        return {name: _plain(values[name]) for name in sorted(names) if name in values}


def _plain(value: Any) -> Any:
    return ANY.to_jsonable(value)


_DECISION = codec_for(RouteDecision)


class Router:
    """Rules are checked when added (a bad expression fails here, naming the rule and column).
    ``variables`` declares the names expressions may read; ``functions`` adds callables."""

    def __init__(
        self,
        *,
        default: str | None = None,
        escalate: str | None = None,
        variables: Iterable[str] | None = None,
        functions: Mapping[str, Callable[..., Any]] | None = None,
        name: str = "router",
    ) -> None:
        self.name = name
        self.default = default
        self.escalate = escalate
        self.variables = set(variables) if variables is not None else None
        self.functions = dict(functions or {})
        self.rules: list[Rule] = []

    def add_route(self, condition: Condition, target: str, *, name: str | None = None) -> Router:
        rule_name = name or (condition if isinstance(condition, str) else f"rule{len(self.rules) + 1}")
        if any(rule.name == rule_name for rule in self.rules):
            raise UsageError(f"router {self.name!r} already has a rule named {rule_name!r}")
        if isinstance(condition, str):
            try:
                expression = Expression(
                    condition, rule=rule_name, variables=self.variables, functions=self.functions
                )
            except ExpressionError as exc:
                raise exc.in_router(self.name) from None
            self.rules.append(Rule(rule_name, target, expression, None))
        elif callable(condition):
            self.rules.append(Rule(rule_name, target, None, condition))
        else:
            raise UsageError(f"router {self.name!r}: a condition is an expression string or a callable")
        return self

    def evaluate(self, values: Mapping[str, Any]) -> RouteDecision:
        """The decision for ``values``, without journaling."""
        for rule in self.rules:
            if rule.holds(values, self.name):
                return RouteDecision(route=rule.target, rule=rule.name, values=rule.seen(values))
        if self.default is not None:
            return RouteDecision(route=self.default, rule=None)
        if self.escalate is not None:
            return RouteDecision(route=self.escalate, rule=None)
        raise UsageError(f"router {self.name!r}: no rule matched and there is no default route")

    def decide(self, values: Mapping[str, Any] | None = None, /, **named: Any) -> RouteDecision:
        """Decide, and inside a workflow journal the decision (replays take the same route)."""
        merged = {**(values or {}), **named}
        backend = current_backend.get()
        if backend is not None:  # another engine's history keeps the decision
            decision = self.evaluate(merged)
            backend.record(
                self.name,
                "route",
                _DECISION.to_jsonable(decision),
                {"rule": decision.rule, "route": decision.route},
            )
            return decision
        ctx = journaling()
        if ctx is None:
            return self.evaluate(merged)
        seq = ctx.next_seq()
        row = ctx.replayed(seq, self.name, "route")
        if row is not None:
            return _DECISION.load(row.output)  # type: ignore[no-any-return]
        decision = self.evaluate(merged)
        now = time.time()
        output = _DECISION.dump(decision, what=f"decision of router {self.name!r}", limit=ctx.max_payload)
        meta = json.dumps({"rule": decision.rule, "route": decision.route})
        ctx.commit_nowait(
            ctx.row(seq, self.name, "route", "completed", started=now, ended=now, output=output, meta=meta)
        )
        return decision
