"""The shipped contract-review graph (YAML, with ``guard:`` on its model stages, a map-reduce
and a step) end to end on both backends: the same report as a direct run, every stage
journaled."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("temporalio", reason="the Temporal backend needs: pip install 'bandmaster[temporal]'")
pytest.importorskip("sklearn", reason="the contract-review example needs scikit-learn")

from temporal_support import EngineFactory

pytestmark = pytest.mark.timeout(240)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "contract_review"


@pytest.fixture(scope="module")
def review() -> Iterator[Any]:
    sys.path.insert(0, str(EXAMPLE))
    try:
        import review as module

        yield module
    finally:
        sys.path.remove(str(EXAMPLE))


def sample(review: Any) -> list[dict[str, Any]]:
    """Two short contracts and the first long one (summarised by map-reduce in chunks)."""
    contracts = review.load_contracts()
    long_one = next(c for c in contracts if len(c["text"].split()) > 250)
    return [*contracts[:2], long_one]


async def test_contract_review_gives_the_direct_runs_report(
    make_engine: EngineFactory, review: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cache = tmp_path_factory.getbasetemp() / "review-models"  # the trained model, once per session
    cache.mkdir(exist_ok=True)
    wf = review.workflow(cache_dir=cache)
    contracts = sample(review)
    expected = [await wf(contract) for contract in contracts]  # no engine: the plain graph walk

    engine = await make_engine([wf])
    handles = [await engine.start(wf, contract) for contract in contracts]
    results = [await handle.result(timeout=120) for handle in handles]
    assert json.dumps(results, sort_keys=True) == json.dumps(expected, sort_keys=True)

    for handle, result in zip(handles, results, strict=True):
        info = await engine.describe(handle.id)
        names = [s.name for s in info.steps]
        chunks = names.count("summarizer") - 1  # the map calls and one reduce
        assert names == [
            "clause-extractor",
            "risk-classifier",
            *["summarizer"] * (chunks + 1),
            "compliance-checker",
            "format",
        ]
        assert [s.seq for s in info.steps] == list(range(1, len(names) + 1))
        assert all(s.status == "completed" for s in info.steps)
        risk = info.steps[1]
        assert risk.meta["request"]["temperature"] == 0  # the YAML guard's settings were sent
        assert risk.meta["request"]["max_tokens"] == 200
        assert risk.meta["guard"]["attempts"][-1]["error"] is None
        assert result["risk"] in ("low", "medium", "high")
    long_run = await engine.describe(handles[2].id)
    assert [s.name for s in long_run.steps].count("summarizer") > 2  # really chunked
