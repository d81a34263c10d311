"""The README's complete scripts, and typing_api.py, pass ``mypy --strict`` as a user would
run it on them.

A complete script is a ```` ```python ```` block with an ``import bandmaster`` line; blocks
without one are fragments (they continue an earlier example) and are not checked. All files
go to one mypy run, outside the repository so its own mypy settings do not apply.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy", reason="needs mypy (bandmaster[dev]): pip install 'bandmaster[dev]'")

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
SCRIPT = re.compile(r"^import bandmaster\b", re.MULTILINE)


def readme_scripts() -> dict[str, str]:
    """The complete scripts of the README by file name, which gives the line they start on."""
    text = README.read_text(encoding="utf-8")
    scripts = {}
    for match in BLOCK.finditer(text):
        if SCRIPT.search(match.group(1)):
            line = text.count("\n", 0, match.start()) + 2  # the block's first line of code
            scripts[f"readme_line_{line}.py"] = match.group(1)
    return scripts


def test_readme_scripts_pass_mypy_strict(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    scripts = readme_scripts()
    assert len(scripts) >= 10, f"expected the README's examples, found {sorted(scripts)}"
    scripts["typing_api.py"] = (HERE / "typing_api.py").read_text(encoding="utf-8")
    for name, code in scripts.items():
        (tmp_path / name).write_text(code, encoding="utf-8")
    # mypy's cache in pytest's (kept between runs: seconds instead of half a minute), if enabled
    pytest_cache = getattr(request.config, "cache", None)
    cache = pytest_cache.mkdir("mypy") if pytest_cache is not None else tmp_path / ".mypy_cache"
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache), *scripts],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (
        f"mypy --strict on README.md's scripts and typing_api.py:\n{result.stdout}{result.stderr}"
    )
