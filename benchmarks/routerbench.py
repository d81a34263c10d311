"""RouterBench per-query results (Hu et al. 2024, arXiv:2403.12031) as ``Recorded`` models and
``Example``s, for offline cascade evaluation (``benchmarks/bench_cascade.py``, tests).

The tables are not part of bandmaster: point ``load_task`` at a folder holding
``routerbench_<task>_<split>.csv.gz`` (RouterDC's train/test split of RouterBench: a prompt
column, then per model its correctness, raw answer and USD cost). Any task so named is found
(``tasks``), and its models are read from the header (every ``<model>|model_response`` column
with a correctness column beside it), so a task or a model never seen here loads the same way.
Each model becomes one ``Recorded`` model answering every prompt of both splits; correctness
travels in the response (``raw["correct"]``), which the default judge reads.

Cleaning: a few ARC rows are artifacts with no correctness for (nearly) every model; rows where
most models are unscored are dropped. A model left unscored in a kept row counts as wrong. A
prompt that appears twice is kept once, in the test split if it is there.
"""

from __future__ import annotations

import ast
import csv
import gzip
import math
from dataclasses import dataclass, field
from pathlib import Path

from bandmaster.errors import UsageError
from bandmaster.models.builtin import Recorded, RecordedAnswer
from bandmaster.routing import Example

MODELS = (  # the models of the ARC and MBPP tables, cheapest first (the order results print in)
    "mistralai/mistral-7b-chat",
    "WizardLM/WizardLM-13B-V1.2",
    "mistralai/mixtral-8x7b-chat",
    "meta/code-llama-instruct-34b-chat",
    "zero-one-ai/Yi-34B-Chat",
    "claude-instant-v1",
    "meta/llama-2-70b-chat",
    "gpt-3.5-turbo-1106",
    "claude-v1",
    "claude-v2",
    "gpt-4-1106-preview",
)
ALIASES = {"arc": "arc_challenge"}  # short names the benchmark has always used
ANSWER = "|model_response"


@dataclass
class RouterBenchTask:
    name: str
    models: dict[str, Recorded]  # every model, answering the prompts of both splits
    train: list[Example]
    test: list[Example]
    ids: dict[str, str] = field(default_factory=dict)  # prompt -> RouterBench sample id


def _number(value: str | None) -> float | None:
    """A score or cost cell: a number, or True/False; empty, NaN or anything else is None."""
    text = (value or "").strip().lower()
    if text in ("true", "false"):
        return float(text == "true")
    try:
        number = float(text) if text else math.nan
    except ValueError:
        return None
    return None if math.isnan(number) else number


def _first(literal: str) -> str:
    """Prompts and answers are stored as Python-literal lists of strings; the first is the one sent."""
    try:
        value = ast.literal_eval(literal)
    except (ValueError, SyntaxError):
        return literal
    if isinstance(value, list | tuple):
        return str(value[0]) if value else ""
    return str(value)


def tasks(data_dir: str | Path) -> list[str]:
    """Every task with both a train and a test table in ``data_dir``, by file name."""
    folder = Path(data_dir)
    found = []
    for path in sorted(folder.glob("routerbench_*_train.csv.gz")):
        task = path.name.removeprefix("routerbench_").removesuffix("_train.csv.gz")
        if (folder / f"routerbench_{task}_test.csv.gz").is_file():
            found.append(task)
    return found


def table_models(path: Path) -> tuple[str, ...]:
    """The models of one table, from its header: known ones in ``MODELS`` order, then others
    in the order their columns come."""
    with gzip.open(path, "rt", newline="") as f:
        header = next(csv.reader(f), [])
    columns = set(header)
    named = [
        c.removesuffix(ANSWER) for c in header if c.endswith(ANSWER) and c.removesuffix(ANSWER) in columns
    ]
    return tuple(
        sorted(named, key=lambda m: (MODELS.index(m) if m in MODELS else len(MODELS), named.index(m)))
    )


def load_task(data_dir: str | Path, task: str, *, models: tuple[str, ...] | None = None) -> RouterBenchTask:
    """``task``: a table's name (``arc_challenge``, ``mbpp``, ...) or ``arc``; ``models``: the
    columns to load (default: every model of the table)."""
    folder = Path(data_dir)
    stem = ALIASES.get(task, task)
    found = tasks(folder)
    if stem not in found:
        raise UsageError(
            f"no RouterBench task {task!r} in {folder}: expected routerbench_{stem}_train.csv.gz and "
            f"routerbench_{stem}_test.csv.gz; tasks there: {found or 'none'}"
        )
    header_models = table_models(folder / f"routerbench_{stem}_train.csv.gz")
    unknown = sorted(set(models or ()) - set(header_models))
    if unknown:
        raise UsageError(
            f"models {unknown} have no columns in the {stem} tables; they have {list(header_models)}"
        )
    models = models or header_models
    if not models:
        raise UsageError(f"the {stem} tables have no '<model>{ANSWER}' columns with a correctness column")
    answers: dict[str, dict[str, RecordedAnswer]] = {m: {} for m in models}
    splits: dict[str, list[Example]] = {}
    ids: dict[str, str] = {}
    for split in ("test", "train"):  # test first: a prompt in both splits stays out of training
        path = folder / f"routerbench_{stem}_{split}.csv.gz"
        examples: list[Example] = []
        with gzip.open(path, "rt", newline="") as f:
            for row in csv.DictReader(f):
                scored = {m: _number(row.get(m)) for m in models}
                if sum(v is not None for v in scored.values()) <= len(models) // 2:
                    continue  # an artifact row (see the module doc)
                prompt = _first(row["prompt"])
                if prompt in ids:
                    continue  # the same prompt twice (MBPP has two such tasks): keep the first
                ids[prompt] = row.get("sample_id", "")
                for m in models:
                    answer = _first(row.get(f"{m}|model_response") or "")
                    answers[m][prompt] = RecordedAnswer(
                        output=answer,
                        text=answer,
                        cost=_number(row.get(f"{m}|total_cost")) or 0.0,
                        correct=bool((scored[m] or 0.0) > 0.5),  # unscored counts as wrong
                    )
                examples.append(Example(input=prompt))
        splits[split] = examples
    return RouterBenchTask(
        name=stem,
        models={m: Recorded(answers[m], name=m) for m in models},
        train=splits["train"],
        test=splits["test"],
        ids=ids,
    )
