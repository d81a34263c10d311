"""A real RabbitMQ broker for tests: ``rabbitmq-server`` (the Debian package) as a child
process on free ports, with its own node name, data, logs, Erlang cookie and epmd port, so
that it shares nothing with another broker or another helper's tests on this machine."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")  # the scripts themselves, not the su-ing wrappers
START_TIMEOUT = 60.0


def rabbit_missing() -> str | None:
    """Why no broker can be started here, or None."""
    if not (RABBIT_BIN / "rabbitmq-server").exists():
        return "rabbitmq-server is not installed (scripts/bootstrap.sh --dev installs it)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Rabbit:
    home: Path
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(RABBIT_BIN / "rabbitmqctl"), "-q", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def queue_depth(self, queue: str) -> int:
        """Ready plus unacknowledged messages of ``queue``."""
        listed = self.ctl("list_queues", "name", "messages")
        for line in listed.stdout.splitlines():
            name, _, count = line.partition("\t")
            if name == queue:
                return int(count)
        raise AssertionError(f"no queue {queue!r}: {listed.stdout}{listed.stderr}")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            self.ctl("shutdown")
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        epmd = shutil.which("epmd", path=os.pathsep.join(["/usr/bin", "/usr/lib/erlang/bin"]))
        if epmd:  # the epmd this broker started on its own port (never the shared default one)
            subprocess.run([epmd, "-kill"], env=self.env, capture_output=True, timeout=30, check=False)


def start_rabbit(home: Path) -> Rabbit:
    port, dist, epmd = free_port(), free_port(), free_port()
    home.mkdir(parents=True, exist_ok=True)
    (home / "enabled_plugins").write_text("[].\n")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),  # the Erlang cookie goes here
        "LANG": "C.UTF-8",
        "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
        "RABBITMQ_LOG_BASE": str(home / "log"),
        "RABBITMQ_NODENAME": f"bmtest{port}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist),
        "ERL_EPMD_PORT": str(epmd),
        "RABBITMQ_PID_FILE": str(home / "rabbit.pid"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
        "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(home / "advanced.config"),
        "RABBITMQ_CONF_ENV_FILE": str(home / "rabbitmq-env.conf"),
    }
    with open(home / "server.log", "wb") as out:
        proc = subprocess.Popen(
            [str(RABBIT_BIN / "rabbitmq-server")], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=home
        )
    rabbit = Rabbit(home, port, env, proc)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"rabbitmq-server exited: {(home / 'server.log').read_text()[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            ping = subprocess.run(
                [str(RABBIT_BIN / "rabbitmq-diagnostics"), "-q", "ping"],
                env=env,
                capture_output=True,
                timeout=30,
            )
            if ping.returncode == 0:
                return rabbit
        if time.monotonic() > deadline:
            rabbit.stop()
            raise AssertionError(
                f"rabbitmq-server not up in {START_TIMEOUT}s: {(home / 'server.log').read_text()[-3000:]}"
            )
        time.sleep(0.3)
