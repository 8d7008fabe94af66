"""Telling the truth when the server cannot serve: the database is away, or this worker is full.

- A database that cannot be reached (refused connection, dropped connection, a pool that has no
  connection to give, a server shutting down) is a 503 `DATABASE_UNAVAILABLE` with `Retry-After`,
  never a 500: the request was fine and may be sent again (clients do, with the same idempotency key).
- `/health/live` answers 200 while the process runs; `/health/ready` asks the database on a
  connection of its own (not the request pool, which a busy server may have lent out) and answers 503
  `DATABASE_UNAVAILABLE` while it is away.
- A worker serves `2 x DIARY_DB_POOL_SIZE` requests at once; a request whose turn does not come within
  `DIARY_MAX_QUEUE_SECONDS` (or beyond `DIARY_MAX_IN_FLIGHT` held) is answered 503 `SERVER_BUSY` with
  `Retry-After` (back-pressure) instead of being queued until every answer is late.

`DatabaseState` logs one warning when the database goes away and one line when it is back, so an
outage is two log lines, not one traceback per request and reaper round.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import NullPool

from .responses import error

log = logging.getLogger("diary_integrations.server")

# What the database raises when it is not there to answer (SQLAlchemy wraps the driver's errors in
# these): a retry later can succeed. On SQLite, OperationalError is also "database is locked" beyond the
# busy timeout: the same answer fits.
UNAVAILABLE: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)
# Paths that are never refused for being busy: probes must answer while the worker is full.
_PROBES = frozenset({"/health", "/health/live", "/health/ready"})
# Paths with back-pressure of their own: the logins queue for a password-hash slot (login.py), and
# answer 429 with Retry-After when it does not come; they take no turn here.
_OWN_GATE = frozenset({"/auth", "/ui/login"})
# How long /health/ready waits for the database before it calls it away (seconds).
READY_TIMEOUT_SECONDS = 3.0


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means "the database is not answering now" rather than a bug or bad input."""
    return isinstance(exc, UNAVAILABLE)


def retry_after(seconds: float) -> dict[str, str]:
    """The `Retry-After` header (whole seconds, at least 1)."""
    return {"Retry-After": str(max(1, round(seconds)))}


def database_unavailable(seconds: float) -> Any:
    """The 503 a request gets while the database is away."""
    response = error(503, "DATABASE_UNAVAILABLE", "the database is not reachable now; retry later")
    response.headers.update(retry_after(seconds))
    return response


class DatabaseState:
    """Whether the database answered last time, logged once per change (not once per request)."""

    def __init__(self) -> None:
        self.down_since: float | None = None
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return self.down_since is None

    def went_away(self, exc: BaseException) -> None:
        with self._lock:
            if self.down_since is not None:
                return
            self.down_since = time.monotonic()
        # The driver's first line says why (connection refused, terminating connection, ...).
        text = str(getattr(exc, "orig", None) or exc).strip()
        reason = text.splitlines()[0][:300] if text else type(exc).__name__
        log.warning("diary server: the database is unavailable (%s); answering 503 until it is back", reason)

    def came_back(self) -> None:
        with self._lock:
            if self.down_since is None:
                return
            away, self.down_since = time.monotonic() - self.down_since, None
        log.warning("diary server: the database is back after %.1f s", away)


class DatabaseGuard:
    """Pure ASGI middleware: a database-unavailable error that escapes a route (or another middleware)
    before the answer started becomes the 503 instead of the catch-all's 500."""

    def __init__(self, app: Any, server: Any) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except UNAVAILABLE as exc:
            if started:
                raise
            state = self.server.state
            state.database.went_away(exc)
            await database_unavailable(state.settings.retry_after_seconds)(scope, receive, send)


class InFlightLimit:
    """Pure ASGI middleware, this worker's back-pressure. At most `2 x DIARY_DB_POOL_SIZE` requests are
    served at once (what the pool can give connections to); the next ones wait their turn for at most
    `DIARY_MAX_QUEUE_SECONDS`, and at most `DIARY_MAX_IN_FLIGHT` in all are held. A request that finds
    the worker full, or whose turn does not come in time, gets 503 `SERVER_BUSY` with `Retry-After`
    before its body is read: the wait of an accepted request stays bounded however many clients come,
    on a fast machine or a slow one. The event loop is single-threaded, so a plain counter is exact."""

    def __init__(self, app: Any, server: Any) -> None:
        self.app = app
        self.server = server
        self.in_flight = 0
        self._turns: asyncio.Semaphore | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in _PROBES:
            await self.app(scope, receive, send)
            return
        settings = self.server.state.settings
        if self._turns is None:
            self._turns = asyncio.Semaphore(2 * settings.db_pool_size)
        if self.in_flight >= settings.max_in_flight:
            await self._busy(settings, f"the server holds {settings.max_in_flight} requests (DIARY_MAX_IN_FLIGHT)")(
                scope, receive, send)
            return
        self.in_flight += 1
        try:
            if scope["path"] in _OWN_GATE:
                await self.app(scope, receive, send)
                return
            try:
                if self._turns.locked():  # a free turn is taken without wait_for's task
                    await asyncio.wait_for(self._turns.acquire(), settings.max_queue_seconds)
                else:
                    await self._turns.acquire()
            except asyncio.TimeoutError:
                message = f"no turn within {settings.max_queue_seconds:g} s (DIARY_MAX_QUEUE_SECONDS)"
                await self._busy(settings, message)(scope, receive, send)
                return
            try:
                await self.app(scope, receive, send)
            finally:
                self._turns.release()
        finally:
            self.in_flight -= 1

    @staticmethod
    def _busy(settings: Any, why: str) -> Any:
        busy = error(503, "SERVER_BUSY", f"the server is busy: {why}; retry later")
        busy.headers.update(retry_after(settings.retry_after_seconds))
        return busy


_probe_engines: dict[str, Engine] = {}
_probe_lock = threading.Lock()


def _probe_engine(engine: Engine) -> Engine:
    """An engine without a pool on the same database: the probe never waits behind busy requests."""
    url = engine.url.render_as_string(hide_password=False)
    with _probe_lock:
        probe = _probe_engines.get(url)
        if probe is None:
            args = {"connect_timeout": int(READY_TIMEOUT_SECONDS)} if engine.dialect.name == "postgresql" else {}
            probe = _probe_engines[url] = create_engine(url, poolclass=NullPool, connect_args=args)
    return probe


def _ping(engine: Engine) -> None:
    with _probe_engine(engine).connect() as conn:
        conn.exec_driver_sql("SELECT 1")


async def database_ready(app: Any) -> bool:
    """Whether the served database answers a `SELECT 1` now (a tracker without an engine: always)."""
    engine = getattr(app.state.tracker, "engine", None)
    if engine is None:
        return True
    try:
        await asyncio.wait_for(asyncio.to_thread(_ping, engine), READY_TIMEOUT_SECONDS)
    except (asyncio.TimeoutError, *UNAVAILABLE) as exc:
        app.state.database.went_away(exc)
        return False
    app.state.database.came_back()
    return True
