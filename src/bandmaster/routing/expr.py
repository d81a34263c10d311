"""Routing conditions as safe expressions: ``"intent.label == 'billing' and intent.confidence > 0.9"``.

Parsed once, when the rule is defined, and checked then: syntax, length, names (every name must
be a declared variable or a registered function), and no access to ``_private`` or dunder
attributes. Evaluation uses simpleeval (no ``eval``): only literals, comparisons, boolean and
arithmetic operators, attribute/item access and registered functions; big powers and huge
strings are refused.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from simpleeval import EvalWithCompoundTypes, InvalidExpression

from bandmaster.errors import UsageError

MAX_LENGTH = 1000

SAFE_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "min": min,
    "max": max,
    "abs": abs,
    "round": round,
    "any": any,
    "all": all,
    "lower": lambda s: str(s).lower(),
    "contains": lambda haystack, needle: needle in haystack,
}
_ALLOWED_NODES = (
    ast.Expression,
    ast.Expr,
    ast.BoolOp,
    ast.BinOp,
    ast.UnaryOp,
    ast.Compare,
    ast.Call,
    ast.IfExp,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.Attribute,
    ast.Subscript,
    ast.Slice,
    ast.List,
    ast.Tuple,
    ast.Set,
    ast.Dict,
    ast.And,
    ast.Or,
    ast.Not,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.Is,
    ast.IsNot,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.FloorDiv,
    ast.Mod,
    ast.USub,
    ast.UAdd,
    ast.keyword,
)


class ExpressionError(UsageError):
    """A routing expression is invalid; names the rule and the column."""

    def __init__(self, rule: str, source: str, column: int | None, reason: str) -> None:
        where = f" at column {column}" if column is not None else ""
        pointer = f"\n    {source}\n    {' ' * (column - 1)}^" if column else ""
        super().__init__(f"rule {rule!r}: {reason}{where}{pointer}")
        self.rule, self.source, self.column, self.reason = rule, source, column, reason


class Expression:
    """A checked, pre-parsed condition. ``evaluate(values)`` reads only ``variables``."""

    def __init__(
        self,
        source: str,
        *,
        rule: str = "<expression>",
        variables: Iterable[str] | None = None,
        functions: Mapping[str, Callable[..., Any]] | None = None,
    ) -> None:
        self.source, self.rule = source, rule
        self.functions = {**SAFE_FUNCTIONS, **(functions or {})}
        if len(source) > MAX_LENGTH:
            raise ExpressionError(rule, source[:60] + "…", None, f"longer than {MAX_LENGTH} characters")
        try:
            tree = ast.parse(source.strip(), mode="eval")
        except SyntaxError as exc:
            raise ExpressionError(rule, source, exc.offset, f"syntax error: {exc.msg}") from None
        self.names = self._check(tree, set(variables) if variables is not None else None)
        self._evaluator = EvalWithCompoundTypes(functions=self.functions)
        self._parsed = tree.body

    def _check(self, tree: ast.AST, variables: set[str] | None) -> set[str]:
        names: set[str] = set()
        for node in ast.walk(tree):
            column = getattr(node, "col_offset", None)
            position = column + 1 if column is not None else None
            if not isinstance(node, _ALLOWED_NODES):
                raise ExpressionError(
                    self.rule, self.source, position, f"{type(node).__name__} is not allowed"
                )
            if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
                raise ExpressionError(self.rule, self.source, position, f"attribute {node.attr!r} is private")
            if isinstance(node, ast.Call) and not (
                isinstance(node.func, ast.Name) and node.func.id in self.functions
            ):
                called = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
                raise ExpressionError(
                    self.rule,
                    self.source,
                    position,
                    f"unknown function {called!r} (available: {', '.join(sorted(self.functions))})",
                )
            if isinstance(node, ast.Name) and node.id not in self.functions:
                if node.id in ("True", "False", "None"):
                    continue
                if variables is not None and node.id not in variables:
                    raise ExpressionError(
                        self.rule,
                        self.source,
                        position,
                        f"unknown name {node.id!r} (known: {', '.join(sorted(variables)) or 'none'})",
                    )
                names.add(node.id)
        return names

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        missing = self.names - set(values)
        if missing:
            raise ExpressionError(self.rule, self.source, None, f"no value for {', '.join(sorted(missing))}")
        self._evaluator.names = dict(values)
        try:
            return self._evaluator.eval(self.source, previously_parsed=self._parsed)
        except InvalidExpression as exc:
            raise ExpressionError(self.rule, self.source, None, str(exc)) from None

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"
