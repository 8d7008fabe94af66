"""A PostgreSQL cluster of a test's own, which the test may stop and start (a database outage) without
touching the shared server on 5432: `initdb` into a fresh directory as the `postgres` user, served on
a free port over TCP and a socket in that directory."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

PG_USER = "postgres"


def _as_postgres(*command: str) -> list[str]:
    """`command` run as the `postgres` user (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return list(command)
    return ["runuser", "-u", PG_USER, "--", *command]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OwnPostgres:
    """One throw-away cluster: `start()`, `stop()` (fast: open connections are ended), `remove()`."""

    def __init__(self) -> None:
        if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
            pytest.skip("initdb/pg_ctl are not installed")
        # Not under pytest's tmp_path: its parents are closed to the postgres user.
        self.root = Path(tempfile.mkdtemp(prefix="diary-own-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        if os.geteuid() == 0:
            shutil.chown(self.root, PG_USER)
        subprocess.run(
            _as_postgres("initdb", "-D", str(self.data), "-A", "trust", "-U", PG_USER, "--no-sync", "-E", "UTF8"),
            check=True, capture_output=True, timeout=120,
        )
        self.url = f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60"
        subprocess.run(
            _as_postgres("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "postgres.log"),
                         "-w", "-t", "60", "start"),
            check=True, capture_output=True, timeout=90,
        )

    def stop(self) -> None:
        subprocess.run(_as_postgres("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop"),
                       check=True, capture_output=True, timeout=90)

    def remove(self) -> None:
        subprocess.run(_as_postgres("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"),
                       capture_output=True, timeout=90)
        shutil.rmtree(self.root, ignore_errors=True)
