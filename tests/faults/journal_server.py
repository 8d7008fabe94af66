"""`diary server` on a chosen loopback port, so a killed server can come back at the same address."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from server_harness import LiveServer, read_url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(workdir: Path, db_url: str, port: int, env: dict[str, str] | None = None) -> LiveServer:
    """`diary server --port PORT --db DB_URL` as a user runs it; returns once it listens."""
    log = workdir / f"server-{port}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "diary_integrations.cli", "server", "--host", "127.0.0.1", "--port", str(port),
         "--db", db_url, "--workers", "1"],
        cwd=workdir, stdout=subprocess.PIPE, stderr=log.open("a"), text=True, env={**os.environ, **(env or {})},
    )
    return LiveServer(process, read_url(process, log), log)


def kill(server: LiveServer) -> None:
    """SIGKILL: no shutdown, no last answer."""
    server.process.kill()
    server.process.wait()
