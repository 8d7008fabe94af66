"""A live tracking server for tests: a real uvicorn process on a free loopback port.

One process serves a whole test session; before each test it is pointed at a fresh database (a new
SQLite file or PostgreSQL schema) through a route that only this harness adds. Run as a script, it is
that server process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

SWAP_ROUTE = "/_test/database"


class LiveServer:
    """A server process and its URL."""

    def __init__(self, process: subprocess.Popen[str], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log

    def use_database(self, url: str, *, reset: bool = False) -> None:
        """Serve this database from now on (migrated before this returns). `reset` empties a database
        served before, keeping only the `default` user: cheaper than a fresh PostgreSQL schema."""
        response = httpx.post(self.url + SWAP_ROUTE, json={"url": url, "reset": reset}, timeout=120)
        if response.status_code != 200:
            raise RuntimeError(f"server could not switch to {url}: {response.text}\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text().splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def read_url(process: subprocess.Popen[str], log: Path) -> str:
    """The URL from the server's first line (`diary server listening on http://...`)."""
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening on " not in line:
        process.kill()
        raise RuntimeError(f"server did not start: {line!r}\n{log.read_text() if log.exists() else ''}")
    return line.rsplit(" ", 1)[-1].strip()


def start_cli_server(workdir: Path, db_url: str, env: dict[str, str] | None = None, workers: int = 1) -> LiveServer:
    """`diary server --port 0` as a user runs it (no test routes), e.g. with auth switched on in `env`;
    one worker unless told (the default, one per core, would cost every test a process per core)."""
    log = workdir / "server.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "diary_integrations.cli", "server", "--host", "127.0.0.1", "--port", "0",
         "--db", db_url, "--workers", str(workers)],
        cwd=workdir, stdout=subprocess.PIPE, stderr=log.open("w"), text=True,
        env={**os.environ, **(env or {})},
    )
    return LiveServer(process, read_url(process, log), log)


def start_swappable_server(workdir: Path) -> LiveServer:
    log = workdir / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIARY_")}
    process = subprocess.Popen(
        [sys.executable, __file__, f"sqlite:///{workdir / 'initial.db'}"],
        cwd=workdir, stdout=subprocess.PIPE, stderr=log.open("w"), text=True, env=env,
    )
    return LiveServer(process, read_url(process, log), log)


def _main(initial_url: str) -> None:
    from fastapi import Body
    from sqlalchemy import delete

    from diary_integrations.server import create_app, serve, set_tracker
    from diary_integrations.tracker import schema
    from diary_integrations.tracker.database import write_transaction
    from diary_integrations.tracker.local import DEFAULT_USERNAME, LocalTracker

    app = create_app(LocalTracker(initial_url))
    kept: dict[str, LocalTracker] = {}  # databases that are reset rather than replaced

    @app.post(SWAP_ROUTE, include_in_schema=False)
    def use_database(url: str = Body(), reset: bool = Body(False)) -> dict[str, str]:
        old = app.state.tracker
        new = kept.setdefault(url, LocalTracker(url)) if reset else LocalTracker(url)
        if reset:
            with write_transaction(new.engine) as conn:
                for table in reversed(schema.metadata.sorted_tables):  # children before parents
                    stmt = delete(table)
                    if table is schema.users:
                        stmt = stmt.where(table.c.username != DEFAULT_USERNAME)
                    conn.execute(stmt)
        _ = new.engine  # migrate now, so the test starts on a ready database
        set_tracker(app, new)
        if old not in kept.values():
            old.close()
        return {"url": url}

    serve(app, "127.0.0.1", 0)


if __name__ == "__main__":
    _main(sys.argv[1])
