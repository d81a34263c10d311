"""Without the ``temporal`` extra, bandmaster still imports (star import included) and
``bm.TemporalEngine`` fails where it is used, with the install command."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
sys.modules["temporalio"] = None  # as if the extra were not installed
from bandmaster import *
import bandmaster as bm
try:
    bm.TemporalEngine("localhost:7233")
except ImportError as exc:
    print(exc)
"""


def test_temporal_engine_without_the_extra_names_the_install_command() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "pip install 'bandmaster[temporal]'" in result.stdout
