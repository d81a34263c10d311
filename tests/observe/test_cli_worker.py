"""``bandmaster worker --metrics-port`` refuses a port it cannot listen on, with exit code 2
and a message naming the option, before it claims any run."""

from __future__ import annotations

import contextlib
import socket
import subprocess
from pathlib import Path

from tests.extras import needs
from tests.models.helpers import bandmaster_exe, subprocess_env

from .conftest import HERE

metrics = needs("metrics", "prometheus_client")


@metrics
def test_worker_with_a_busy_metrics_port_exits_with_a_usage_error(tmp_path: Path) -> None:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = [bandmaster_exe(), "worker", str(HERE / "wf_observed.py"), "--db", str(tmp_path / "j.db")]
        result = subprocess.run(
            [*args, "--metrics-port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            env=subprocess_env(),
            cwd=tmp_path,
        )
    assert result.returncode == 2, result.stderr
    message = " ".join(result.stderr.split())
    assert f"--metrics-port {port}: cannot listen on 127.0.0.1" in message
    assert not (tmp_path / "j.db").exists()  # nothing was opened, nothing claimed


def test_worker_with_an_alert_webhook_and_no_secret_exits_with_a_usage_error(tmp_path: Path) -> None:
    args = [bandmaster_exe(), "worker", str(HERE / "wf_observed.py"), "--db", str(tmp_path / "j.db")]
    env = {k: v for k, v in subprocess_env().items() if k != "BANDMASTER_ALERT_SECRET"}
    result = subprocess.run(
        [*args, "--alert-webhook", "http://127.0.0.1:9/alerts"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert "--alert-webhook: set BANDMASTER_ALERT_SECRET" in " ".join(result.stderr.split())
    assert not (tmp_path / "j.db").exists()
