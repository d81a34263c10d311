"""The types users see, for ``mypy --strict`` in test_typing_readme.py (never run).

``# type: ignore[...]`` marks a line mypy must reject: strict mode reports an ignore that is
not needed, so a signature that stopped checking its arguments fails the test.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import assert_type

import bandmaster as bm


@bm.step
async def classify(text: str) -> int:
    return len(text)


@bm.step(timeout=1.0, retry=bm.Retry(attempts=2))
def scan(text: str, *, strict: bool = False) -> bool:
    return strict


@bm.workflow
async def triage(text: str) -> str:
    as_step: bm.Step[[str], int] = classify
    assert as_step is classify
    assert_type(classify(text), Awaitable[int])
    assert_type(scan(text, strict=True), Awaitable[bool])
    assert_type(await scan(text), bool)
    classify(1)  # type: ignore[arg-type]
    scan(text, lenient=True)  # type: ignore[call-arg]
    return "ok"


async def start(engine: bm.Engine) -> None:
    as_workflow: bm.Workflow[[str], str] = triage
    assert as_workflow is triage
    handle = await engine.start(triage, "text")
    assert_type(await handle.result(), str)
    assert_type(await triage("text"), str)


def lazy_names() -> None:
    assert_type(bm.Router(default="human"), bm.Router)
    print(bm.Routr)  # type: ignore[attr-defined]
