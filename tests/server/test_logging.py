"""``bandmaster server --access-log --log-json``: each request is one JSON log line, with the
path exactly as requested (a ``%`` or ``{`` in it is data, not a format); a bad
``--log-level`` is refused with exit code 2, naming the levels."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx2

from .conftest import start_server, stop, wait_healthy


def json_lines(log: Path) -> list[dict[str, object]]:
    lines = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_access_log_as_json_lines(tmp_path: Path) -> None:
    proc, url, log = start_server(tmp_path, tmp_path / "j.db", "--access-log", "--log-json")
    try:
        wait_healthy(proc, url, log)
        odd = "/nothing-%s-{x}-%(name)s"
        assert httpx2.get(url + odd, timeout=5).status_code == 404
    finally:
        stop(proc)
    access = [r for r in json_lines(log) if r["logger"] == "uvicorn.access"]
    assert any("GET /healthz" in str(r["message"]) and " 200" in str(r["message"]) for r in access), access
    [missing] = [r for r in access if "nothing" in str(r["message"])]
    assert "/nothing-%s-%7Bx%7D-%(name)s" in str(missing["message"])  # as sent: braces are quoted
    assert missing["level"] == "info"
    assert {"time", "level", "logger", "message"} <= set(missing)


def test_no_access_log_by_default(tmp_path: Path) -> None:
    proc, url, log = start_server(tmp_path, tmp_path / "j.db", "--log-json")
    try:
        wait_healthy(proc, url, log)
    finally:
        stop(proc)
    assert not [r for r in json_lines(log) if r["logger"] == "uvicorn.access"]


def test_bad_log_level_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bandmaster.cli",
            "server",
            "--db",
            str(tmp_path / "j.db"),
            "--log-level",
            "loud",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "'loud' is not a log level; use one of debug, info, warning, error, critical" in " ".join(
        result.stderr.split()
    )
