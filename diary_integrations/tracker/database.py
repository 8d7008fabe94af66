"""Engines: URL normalisation, SQLite tuning, and write transactions that never deadlock on upgrade."""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from .defaults import DEFAULT_URI  # noqa: E402, F401 - re-exported

SQLITE_BUSY_TIMEOUT_MS = 60_000


def normalize_url(path_or_url: str | os.PathLike[str]) -> str:
    """A bare path becomes an absolute SQLite URL, so a pickled tracker finds the same file from any cwd."""
    text = os.fspath(path_or_url)
    if "://" not in text:
        return f"sqlite:///{Path(text).expanduser().resolve()}"
    if text.startswith("postgres://"):  # Heroku-style URLs; SQLAlchemy knows only "postgresql"
        text = "postgresql://" + text[len("postgres://"):]
    url = make_url(text)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        url = url.set(database=str(Path(url.database).expanduser().resolve()))
    elif url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")  # the driver the [postgres] extra installs
    return url.render_as_string(hide_password=False)


# Seconds a new PostgreSQL connection may take before it counts as unreachable (a URL may say otherwise).
CONNECT_TIMEOUT_SECONDS = 10


def create_tracker_engine(url: str, pool_size: int = 5, *, pre_ping: bool = True) -> Engine:
    """The engine of a tracker: `pool_size` connections kept (and as many again in a burst) on a
    server database, each tested with a round trip before use unless `pre_ping` is off (a tracking
    server: a connection the database dropped fails its request with a 503 the client retries, and
    SQLAlchemy then replaces every connection of the pool); SQLite tuned for several writers."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # Bounded, so a host that does not answer is an error (and a server's 503) rather than a hang.
        connect: dict[str, Any] = {}
        if "connect_timeout" not in parsed.query:
            connect["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
        # No JIT: the planner prices a search over 100,000 iterations by the rows it might visit, well past
        # jit_above_cost, then reads a few hundred of them in an index's order; compiling the plan took
        # longer (60-300 ms) than running it. Kept beside any options the URL has (a search_path).
        options = parsed.query.get("options", "")
        options = " ".join(options) if isinstance(options, tuple) else options
        connect["options"] = f"{options} -c jit=off".strip()
        return create_engine(
            url, pool_pre_ping=pre_ping, pool_size=pool_size, max_overflow=pool_size, connect_args=connect
        )
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    _tune_sqlite(engine)
    return engine


def _switch_to_wal(cursor: sqlite3.Cursor) -> None:
    """Put the file in WAL mode unless it is already. WAL is stored in the file, and switching needs an
    exclusive lock that SQLite does not wait for under busy_timeout: several processes (the ranks of a
    job) opening a new file at once get "database is locked" at once. So the switch is retried with a
    short jittered pause, for as long as the busy timeout, until this or another connection has made it."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.005, 0.05))


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        # Take transaction control away from the sqlite3 module so we can say BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # The busy timeout first, so every pragma after it waits for a lock instead of failing at once.
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # WAL lets readers run beside one writer; NORMAL sync is durable across process crashes.
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A deferred transaction that reads and then writes cannot wait for the lock (SQLite
        # answers "database is locked" at once); IMMEDIATE takes the write lock up front and
        # waits for it under busy_timeout, so concurrent writers queue instead of failing.
        immediate = conn.get_execution_options().get("diary_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# The transaction that `one_transaction` holds open in this context, with its engine.
_joined: ContextVar[tuple[Engine, Connection] | None] = ContextVar("diary_joined_transaction", default=None)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction for one tracker call: committed on success, rolled back on any error. Inside
    `one_transaction` on the same engine it is a savepoint of that transaction instead, so the outer
    block commits everything or nothing."""
    joined = _joined.get()
    if joined is not None and joined[0] is engine:
        with joined[1].begin_nested():
            yield joined[1]
        return
    with _one_writer(engine), engine.connect() as conn:
        conn.execution_options(diary_write=True)
        with conn.begin():
            yield conn


# One lock per SQLite engine: the threads of a process take turns at writing here, on a lock that hands
# over at once, instead of in SQLite's busy handler, which polls with sleeps of up to 100 ms (a tracking
# server's threads spent most of their time asleep there). Other processes still queue in SQLite.
_writer_locks: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_writer_locks_guard = threading.Lock()


@contextmanager
def _one_writer(engine: Engine) -> Iterator[None]:
    if engine.dialect.name != "sqlite":
        yield
        return
    with _writer_locks_guard:
        lock = _writer_locks.setdefault(engine, threading.RLock())
    # Bounded like the busy timeout: past it, SQLite's own wait decides (and says "database is locked").
    held = lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
    try:
        yield
    finally:
        if held:
            lock.release()


@contextmanager
def one_transaction(engine: Engine) -> Iterator[Connection]:
    """Every `write_transaction` on `engine` in this block (and in the calls it makes, in this thread)
    joins one transaction: an idempotency key is recorded with the write it guards, or with neither."""
    joined = _joined.get()
    if joined is not None and joined[0] is engine:
        yield joined[1]
        return
    with write_transaction(engine) as conn:
        token = _joined.set((engine, conn))
        try:
            yield conn
        finally:
            _joined.reset(token)


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn, conn.begin():
        yield conn
