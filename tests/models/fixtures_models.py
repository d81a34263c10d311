"""Callable models named by ``models.yaml`` (``function: "tests.models.fixtures_models:model_a"``)
in processes started by the tests; the repository root must be on PYTHONPATH."""

from __future__ import annotations


def model_a(text: str) -> tuple[str, float]:
    return f"a:{text}", 0.9


def model_b(text: str) -> tuple[str, float]:
    return f"b:{text}", 0.7
