"""Routing conditions as safe expressions: ``"intent.label == 'billing' and intent.confidence > 0.9"``.

Parsed once, when the rule is defined, and checked then: syntax, length, nesting depth, names
(every name must be a declared variable or a registered function), no access to ``_private`` or
dunder attributes, and printf-style widths (``'%.2f' % score``) within ``MAX_FORMAT_WIDTH``.
Evaluation uses simpleeval (no ``eval``): only literals, comparisons, boolean and arithmetic
operators, attribute/item access and registered functions. What could allocate without bound
is refused at run time too (a repetition or a ``%`` format over ``MAX_RESULT``, ``round`` to
more than ``MAX_ROUND_DIGITS``), and any failure while evaluating (a missing key, a division
by zero, a type mismatch) is an ``ExpressionError`` naming the rule.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from simpleeval import DEFAULT_OPERATORS, MAX_STRING_LENGTH, EvalWithCompoundTypes, InvalidExpression

from bandmaster.errors import UsageError
from bandmaster.format_limits import percent_format_problem

MAX_LENGTH = 1000
MAX_DEPTH = 50
"""Deepest nesting of an expression's syntax tree: evaluation recurses once per level."""
MAX_RESULT = MAX_STRING_LENGTH
"""Largest string or list (counting nested items and characters) a ``*`` or ``%`` may build."""
MAX_ROUND_DIGITS = 100

_SCALARS = (str, int, float, bool, type(None))


class _Refused(ValueError):
    """An evaluation step would allocate without bound; the message says which."""


def _lower(text: Any) -> str:
    if not isinstance(text, _SCALARS):  # str() of a container can be any size
        raise _Refused(f"lower() takes a string or a number, not {type(text).__name__}")
    return str(text).lower()


def _round(number: Any, ndigits: int | None = None) -> Any:
    if ndigits is not None and not -MAX_ROUND_DIGITS <= ndigits <= MAX_ROUND_DIGITS:
        raise _Refused(f"round() to {ndigits} digits; the limit is {MAX_ROUND_DIGITS}")
    return round(number, ndigits)


SAFE_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "min": min,
    "max": max,
    "abs": abs,
    "round": _round,
    "any": any,
    "all": all,
    "lower": _lower,
    "contains": lambda haystack, needle: needle in haystack,
}


def _size(value: Any, budget: int) -> int:
    """Items plus characters in ``value``, counted until ``budget`` is passed."""
    total, pending = 0, [value]
    while pending and total <= budget:
        item = pending.pop()
        total += 1
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, list | tuple | set | frozenset):
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
    return total


def _multiply(left: Any, right: Any) -> Any:
    # simpleeval bounds len(x) * n; ``[text] * n`` and ``[[0] * n] * n`` stay small by len
    # and grow by what they hold.
    for sequence, count in ((left, right), (right, left)):
        repeated = isinstance(sequence, str | bytes | list | tuple) and isinstance(count, int) and count > 0
        if repeated and _size(sequence, MAX_RESULT) * count > MAX_RESULT:
            raise _Refused(f"repeating a sequence would build more than {MAX_RESULT:,} items/characters")
    return left * right


def _modulo(left: Any, right: Any) -> Any:
    if isinstance(left, str | bytes):
        template = left.decode("latin-1") if isinstance(left, bytes) else left
        problem = percent_format_problem(template)
        if problem is not None:
            raise _Refused(problem)
        values = (
            right.values() if isinstance(right, dict) else right if isinstance(right, tuple) else (right,)
        )
        for value in values:
            if not isinstance(value, (*_SCALARS, bytes)):  # str() of a container can be any size
                raise _Refused(f"'%' formats strings and numbers, not {type(value).__name__}")
        if len(template) + sum(len(v) for v in values if isinstance(v, str | bytes)) > MAX_RESULT:
            raise _Refused(f"'%' would build more than {MAX_RESULT:,} characters")
    return left % right


_OPERATORS = {**DEFAULT_OPERATORS, ast.Mult: _multiply, ast.Mod: _modulo}
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


_TOO_DEEP = f"nested more than {MAX_DEPTH} levels deep; split the condition into simpler rules"


class ExpressionError(UsageError):
    """A routing expression is invalid, or failed while evaluated; names the rule (and its
    router, when it has one) and the column."""

    def __init__(
        self, rule: str, source: str, column: int | None, reason: str, *, router: str | None = None
    ) -> None:
        where = f" at column {column}" if column is not None else ""
        pointer = f"\n    {source}\n    {' ' * (column - 1)}^" if column else ""
        owner = f"router {router!r}: " if router is not None else ""
        super().__init__(f"{owner}rule {rule!r}: {reason}{where}{pointer}")
        self.rule, self.source, self.column, self.reason = rule, source, column, reason
        self.router = router

    def in_router(self, router: str) -> ExpressionError:
        """The same error, saying which router the rule belongs to."""
        error = ExpressionError(self.rule, self.source, self.column, self.reason, router=router)
        error.__cause__ = self.__cause__
        return error


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
        except (RecursionError, MemoryError):  # the parser's own stack
            raise ExpressionError(rule, source, None, _TOO_DEEP) from None
        self._check_depth(tree)
        self.names = self._check(tree, set(variables) if variables is not None else None)
        self._evaluator = EvalWithCompoundTypes(operators=_OPERATORS, functions=self.functions)
        self._parsed = tree.body

    def _check_depth(self, tree: ast.AST) -> None:
        pending = [(tree, 0)]
        while pending:
            node, depth = pending.pop()
            if depth > MAX_DEPTH:
                column = getattr(node, "col_offset", None)
                raise ExpressionError(
                    self.rule, self.source, None if column is None else column + 1, _TOO_DEEP
                )
            pending.extend((child, depth + 1) for child in ast.iter_child_nodes(node))

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
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
                template = node.left.value if isinstance(node.left, ast.Constant) else None
                problem = percent_format_problem(template) if isinstance(template, str) else None
                if problem is not None:
                    raise ExpressionError(self.rule, self.source, position, problem)
        return names

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        missing = self.names - set(values)
        if missing:
            raise ExpressionError(self.rule, self.source, None, f"no value for {', '.join(sorted(missing))}")
        self._evaluator.names = dict(values)
        try:
            return self._evaluator.eval(self.source, previously_parsed=self._parsed)
        except (InvalidExpression, _Refused) as exc:
            raise ExpressionError(self.rule, self.source, None, str(exc)) from None
        except RecursionError:  # the expression is at most MAX_DEPTH deep: the values are not
            reason = "evaluation failed: the values are nested too deeply to read"
            raise ExpressionError(self.rule, self.source, None, reason) from None
        except Exception as exc:  # a missing key, 1/0, 'a' < 1, a registered function's own error
            reason = f"evaluation failed: {type(exc).__name__}: {exc}"
            raise ExpressionError(self.rule, self.source, None, reason) from exc

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"
