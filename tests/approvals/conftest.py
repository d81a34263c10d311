"""Fixtures for approvals: a real webhook receiver process on 127.0.0.1, and a dead port."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

RECEIVER = Path(__file__).resolve().parent / "receiver.py"
SECRET = "s3cret-signing-key-for-tests-0123456789"


@dataclass
class Receiver:
    url: str
    record: Path
    process: subprocess.Popen[str]

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def requests(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines() if line]


def start_receiver(tmp_path: Path, *, fail_first: int = 0, secret: str = SECRET) -> Receiver:
    record = tmp_path / f"received-{fail_first}.jsonl"
    process = subprocess.Popen(
        [sys.executable, str(RECEIVER), secret, str(record), "--fail-first", str(fail_first)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    port = int(process.stdout.readline())
    return Receiver(f"http://127.0.0.1:{port}/hooks/approvals", record, process)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    started = start_receiver(tmp_path)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def flaky_receiver(tmp_path: Path) -> Iterator[Receiver]:
    """Answers 503 to its first two requests, then verifies like the others."""
    started = start_receiver(tmp_path, fail_first=2)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def dead_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (the port was just released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/approvals"
