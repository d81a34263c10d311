"""``bandmaster demo`` from a pip install: the wheel ships the examples as package data.

The wheel is built from this checkout and installed with ``pip install --target`` into a
folder that goes first on ``PYTHONPATH`` (the dependencies come from this environment, the
checkout's editable install is shadowed), and the demo runs from a folder outside the checkout.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SUMMARY_ROW = re.compile(r"^│ (.+?) +│ +(.+?) │$")
HTML_ROW = re.compile(r"<tr><th scope='row'>(.*?)</th><td>(.*?)</td></tr>")


def pip(*args: str | Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *map(str, args)],
        check=True,
        capture_output=True,
        timeout=300,
    )


def test_demo_runs_from_an_installed_wheel_and_its_html_matches_the_terminal(tmp_path: Path) -> None:
    pip("wheel", "--no-deps", "-w", tmp_path / "dist", REPO)
    [wheel] = (tmp_path / "dist").glob("bandmaster-*.whl")
    pip("install", "--no-deps", "--target", tmp_path / "site", wheel)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANDMASTER_")}
    env.update(PYTHONPATH=str(tmp_path / "site"), NO_COLOR="1")
    env.pop("COLUMNS", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, bandmaster.cli; print(bandmaster.cli.__file__, file=sys.stderr);"
            "bandmaster.cli.main()",
            "demo",
            "--limit",
            "20",
        ],
        capture_output=True,
        text=True,
        cwd=outside,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith(str(tmp_path / "site" / "bandmaster")), "the wheel, not the checkout, ran"
    terminal = {
        m[1].strip(): m[2].strip() for line in proc.stdout.splitlines() if (m := SUMMARY_ROW.match(line))
    }
    assert "Support triage on bundled tickets: 20/20 tickets" in proc.stdout
    page = (outside / ".bandmaster" / "demo-report.html").read_text()
    report = {html.unescape(k).strip(): html.unescape(v) for k, v in HTML_ROW.findall(page)}
    assert report["intent accuracy (cascade)"] == terminal["intent accuracy (cascade)"]
    assert re.fullmatch(r"\d\.\d{3}", report["intent accuracy (cascade)"])  # 0.800, not 0.8000000001
    assert len(report) >= 12
    assert report == {k: terminal.get(k) for k in report}  # every summary value, digit for digit
