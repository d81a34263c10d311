"""``GraphError``: a graph definition is wrong. Every problem names the file, the line and the
node, so the message reads like a compiler's: ``support.yaml:23: node 'route': ...``."""

from __future__ import annotations

from dataclasses import dataclass

from bandmaster.errors import UsageError


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a graph. ``line`` is 1-based; ``None`` when the graph was built in
    Python (there is no file line to point at) or the key is absent from the file."""

    file: str
    line: int | None
    node: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        subject = f" node {self.node!r}:" if self.node is not None else ""
        return f"{where}:{subject} {self.message}"


class GraphError(UsageError):
    """A graph is invalid (bad YAML, unknown node or model, unreachable node, cycle without an
    exit, a key that no upstream node produces...). ``problems`` lists every problem found;
    ``file``, ``line`` and ``node`` are those of the first."""

    def __init__(self, problems: list[Problem], *, graph: str | None = None) -> None:
        if not problems:
            raise ValueError("GraphError needs at least one problem")
        # Private, so the journal's error record keeps only the JSON attributes below.
        self._problems = list(problems)
        self.graph = graph
        first = problems[0]
        self.file, self.line, self.node = first.file, first.line, first.node
        if len(problems) == 1:
            message = str(first)
        else:
            name = f"graph {graph!r}" if graph else "the graph"
            lines = "\n  ".join(str(p) for p in problems)
            message = f"{name} has {len(problems)} problems:\n  {lines}"
        super().__init__(message)

    @property
    def problems(self) -> list[Problem]:
        """Every problem found (an error rebuilt from the journal has the first only)."""
        problems: list[Problem] | None = getattr(self, "_problems", None)
        if problems is None:
            return [Problem(self.file, self.line, self.node, str(self))]
        return problems
