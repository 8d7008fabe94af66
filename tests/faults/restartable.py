"""A `diary server` process that a fault test can SIGKILL and start again on the same port and database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RestartableServer:
    """`diary server --port PORT --db DB`, started with `start()`, killed without a word with `kill()`."""

    def __init__(self, workdir: Path, db_url: str, *, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.db_url = db_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("DIARY_")}, **(env or {})}
        self.process: subprocess.Popen[str] | None = None
        self.starts = 0

    def start(self, timeout: float = 60.0) -> None:
        self.starts += 1
        log = (self.workdir / f"server-{self.starts}.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "diary_integrations.cli", "server", "--host", "127.0.0.1",
             "--port", str(self.port), "--db", self.db_url, "--workers", "1"],
            cwd=self.workdir, stdout=subprocess.PIPE, stderr=log, text=True, env=self.env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.log_text()}")
            time.sleep(0.05)
        raise RuntimeError(f"server did not answer /health within {timeout}s: {self.log_text()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, whatever request is in flight is cut."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_text(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.workdir.glob("server-*.log")))


@contextmanager
def killable_server(workdir: Path) -> Iterator[RestartableServer]:
    """A RestartableServer on a SQLite file in `workdir`, started, and stopped on leaving."""
    server = RestartableServer(workdir, f"sqlite:///{workdir / 'server.db'}")
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Outage:
    """A training's server outage by step: `at(step)`, called from a callback each step, SIGKILLs the
    server the first time a step reaches `kill` (after `before_kill()`, e.g. opening the run so it exists
    before the server goes) and starts it again on the same port and database the first time one reaches
    `restart`. Steps between the two are written while no server answers."""

    def __init__(self, server: RestartableServer, kill: int, restart: int,
                 before_kill: Callable[[], object] = lambda: None) -> None:
        assert kill < restart
        self.server, self.kill, self.restart, self.before_kill = server, kill, restart, before_kill
        self.killed = self.restarted = False

    def at(self, step: int) -> None:
        if step >= self.kill and not self.killed:
            self.killed = True
            self.before_kill()
            self.server.kill()
        if step >= self.restart and not self.restarted:
            self.restarted = True
            self.server.start(timeout=300)  # a loaded machine can take long to start a server

    def check_done(self) -> None:
        """The outage happened mid-run: without this a test that trained too few steps would pass by not testing."""
        assert self.killed and self.restarted, (self.killed, self.restarted)


def assert_each_step_once(tracker: Any, iteration_id: int, key: str, steps: Iterable[int]) -> None:
    """`key`'s points on the iteration are exactly one at each of `steps`: none lost, none doubled."""
    stored = sorted(m.step for m in tracker.get_metrics(iteration_id, key=key))
    expected = sorted(steps)
    doubled = sorted({s for s in stored if stored.count(s) > 1})
    assert stored == expected, f"{key}: doubled {doubled}, lost {sorted(set(expected) - set(stored))}"
