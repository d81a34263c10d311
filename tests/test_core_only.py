"""The suite collects with only bandmaster's core installed: a test that needs an extra skips,
saying which, instead of breaking collection for everyone (see core_only.py)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from core_only import blocked_modules, core_distributions

REPO = Path(__file__).resolve().parents[1]


def test_core_is_bandmaster_without_extras() -> None:
    core = core_distributions()
    assert {"bandmaster", "pydantic", "numpy", "pytest"} <= core
    blocked = blocked_modules(core)
    assert not {"pydantic", "numpy", "yaml", "pytest", "pytest_asyncio"} & blocked
    # From extras only (httpx2 came with genai-prices into the core).
    for module in ["fastapi", "opentelemetry", "sklearn", "temporalio"]:
        assert (module in blocked) == (importlib.util.find_spec(module) is not None), module


def test_suite_collects_with_only_the_core() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "tests" / "core_only.py"),
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = result.stdout.strip().splitlines()[-1:] or ["no output"]
    assert result.returncode == 0, f"{summary[0]}\n{result.stdout[-4000:]}{result.stderr[-2000:]}"
    assert " collected" in summary[0]
