"""Golden labels: the known correct decision for recorded runs, and how a run's decision is
read for scoring.

A labels file is JSON lines, each ``{"run_id": ..., "label": ...}``, or keyed by a field of
the run's input (``key="ticket.id"`` with lines ``{"key": "T-17", "label": "human"}``; the
line may also name the field itself: ``{"id": "T-17", "label": "human"}``).

The decision is, by ``decision=``: ``"output"`` (the final output, the default), ``"output.x.y"``
(a field of it), ``"route"`` (the last route any router took), ``"route:NAME"`` (the last route
of router NAME), or a callable taking the ``RunReplay``.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from bandmaster.errors import ReplayError
from bandmaster.replay._report import GoldenScore, RouteTaken, RunReplay

DecisionSpec = str | Callable[[RunReplay], Any]
Labels = Mapping[str, Any]
_MISSING = object()


def load_labels(source: str | os.PathLike[str] | Iterable[Mapping[str, Any]], *, key: str | None) -> Labels:
    """Labels by run id, or by the value of the input field ``key``, from a JSONL file or
    from dicts."""
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise ReplayError(f"no golden labels file at {path}")
        lines: list[tuple[str, Mapping[str, Any]]] = []
        try:
            content = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ReplayError(f"cannot read golden labels {path} as UTF-8 text: {exc}") from exc
        for number, text in enumerate(content.splitlines(), 1):
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ReplayError(f"{path}:{number} is not valid JSON ({exc.msg})") from exc
            except RecursionError as exc:
                raise ReplayError(f"{path}:{number} is nested too deeply to read as JSON") from exc
            lines.append((f"{path}:{number}", value))
    else:
        lines = [(f"golden label {i}", value) for i, value in enumerate(source, 1)]
    field = key.rsplit(".", 1)[-1] if key else None
    labels: dict[str, Any] = {}
    for where, line in lines:
        if not isinstance(line, Mapping) or "label" not in line:
            raise ReplayError(
                f'{where}: expected an object with a "label", like {{"run_id": "...", "label": "..."}}'
            )
        if key is None:
            if "run_id" not in line:
                raise ReplayError(
                    f'{where}: no "run_id"; label runs by id, or key them by an input field '
                    f'(--golden-key ticket.id with lines {{"key": ..., "label": ...}})'
                )
            ident = line["run_id"]
        else:
            ident = line.get("key", line.get(field, _MISSING)) if field else _MISSING
            if ident is _MISSING:
                raise ReplayError(f'{where}: no "key" (or {field!r}) to match the input field {key!r}')
        labels[_key_text(ident)] = line["label"]
    return labels


def _key_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def input_field(signature: inspect.Signature, arguments: list[Any], path: str) -> Any:
    """The value at ``path`` in a run's input: ``param.field...``, or for a one-parameter
    workflow ``field...`` of that parameter. ``_MISSING`` when absent."""
    names = list(signature.parameters)
    values = dict(zip(names, arguments, strict=False))
    head, *rest = path.split(".")
    if head in values:
        value: Any = values[head]
    elif len(names) == 1 and arguments:
        value, rest = arguments[0], [head, *rest]
    else:
        return _MISSING
    for part in rest:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def decision_reader(spec: DecisionSpec) -> tuple[Callable[[RunReplay], Any], Callable[[RunReplay], Any]]:
    """Readers of the replayed decision and of the recorded one."""
    if callable(spec):
        return spec, lambda run: spec(_as_recorded(run))
    if spec == "output" or spec.startswith("output."):
        path = spec.split(".")[1:]
        return (lambda run: _dig(run.output, path)), (lambda run: _dig(run.recorded_output, path))
    if spec == "route" or spec.startswith("route:"):
        router = spec.partition(":")[2] or None
        return (lambda run: _last_route(run.routes, router)), (
            lambda run: _last_route(run.recorded_routes, router)
        )
    raise ReplayError(
        f"decision {spec!r}: use 'output', 'output.FIELD', 'route' or 'route:ROUTER' (or a callable)"
    )


def _as_recorded(run: RunReplay) -> RunReplay:
    return run.model_copy(
        update={
            "output": run.recorded_output,
            "routes": run.recorded_routes,
            "steps": run.recorded_steps,
            "status": "completed",
        }
    )


def _dig(value: Any, path: list[str]) -> Any:
    for part in path:
        value = value.get(part) if isinstance(value, Mapping) else getattr(value, part, None)
    return value


def _last_route(routes: list[RouteTaken], router: str | None) -> str | None:
    taken = [r.route for r in routes if router is None or r.router == router]
    return taken[-1] if taken else None


def score(runs: list[RunReplay], labels: Labels, total_labels: int) -> GoldenScore:
    """Accuracy and confusion table over the runs that have a label (``run.label`` set)."""
    labelled = [run for run in runs if run.label is not None]
    correct = sum(1 for run in labelled if run.decision == run.label)
    recorded_correct = sum(1 for run in labelled if run.recorded_decision == run.label)
    confusion: dict[str, dict[str, int]] = {}
    for run in labelled:
        row = confusion.setdefault(_key_text(run.label), {})
        predicted = _key_text(run.decision)
        row[predicted] = row.get(predicted, 0) + 1
    count = len(labelled)
    return GoldenScore(
        labelled=count,
        correct=correct,
        accuracy=correct / count if count else 0.0,
        recorded_correct=recorded_correct,
        recorded_accuracy=recorded_correct / count if count else 0.0,
        confusion=confusion,
        unlabelled_runs=len(runs) - count,
        unmatched_labels=total_labels - count,
    )


def label_for(run: RunReplay, labels: Labels, key: str | None, signature: inspect.Signature) -> Any:
    if key is None:
        return labels.get(run.run_id)
    arguments = run.input if isinstance(run.input, list) else [run.input]
    value = input_field(signature, arguments, key)
    return None if value is _MISSING else labels.get(_key_text(value))
