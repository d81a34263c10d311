"""RouterBench per-query results (Hu et al. 2024, arXiv:2403.12031) as ``Recorded`` models and
``Example``s, for offline cascade evaluation (``benchmarks/bench_cascade.py``, tests).

The tables are not part of bandmaster: point ``load_task`` at a folder holding
``routerbench_<task>_<split>.csv.gz`` (RouterDC's train/test split of RouterBench: a prompt
column, then per model its correctness, raw answer and USD cost). Each model becomes one
``Recorded`` model answering every prompt of both splits; correctness travels in the
response (``raw["correct"]``), which the default judge reads.

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
from typing import Literal

from bandmaster.errors import UsageError
from bandmaster.models.builtin import Recorded, RecordedAnswer
from bandmaster.routing import Example

MODELS = (
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
FILES = {"arc": "arc_challenge", "mbpp": "mbpp"}
Task = Literal["arc", "mbpp"]


@dataclass
class RouterBenchTask:
    name: str
    models: dict[str, Recorded]  # every model, answering the prompts of both splits
    train: list[Example]
    test: list[Example]
    ids: dict[str, str] = field(default_factory=dict)  # prompt -> RouterBench sample id


def _number(value: str | None) -> float | None:
    try:
        number = float(value) if value not in (None, "") else math.nan
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


def load_task(data_dir: str | Path, task: Task, *, models: tuple[str, ...] = MODELS) -> RouterBenchTask:
    folder = Path(data_dir)
    if task not in FILES:
        raise UsageError(f"unknown RouterBench task {task!r}; expected one of {sorted(FILES)}")
    answers: dict[str, dict[str, RecordedAnswer]] = {m: {} for m in models}
    splits: dict[str, list[Example]] = {}
    ids: dict[str, str] = {}
    for split in ("test", "train"):  # test first: a prompt in both splits stays out of training
        path = folder / f"routerbench_{FILES[task]}_{split}.csv.gz"
        if not path.is_file():
            raise UsageError(f"RouterBench table {path} not found")
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
        name=task,
        models={m: Recorded(answers[m], name=m) for m in models},
        train=splits["train"],
        test=splits["test"],
        ids=ids,
    )
