"""What several server processes over one database coordinate: the reaper's turns and start-up.

`diary server --workers N`, and servers on several hosts over one PostgreSQL, share everything through
the database: login failures (throttle.py), token generations (the `user` row, read on every request),
idempotency keys (tracker/idempotency.py). Two things would run in every process at once without this
module: the reaper, and the start-up step that sets the administrator's password.

The reaper takes turns: on PostgreSQL a round runs inside a transaction holding the advisory lock
`REAPER_LOCK` (`pg_try_advisory_xact_lock`: a process that finds it taken skips the round), on SQLite
the round's write transaction (BEGIN IMMEDIATE) already excludes every other writer. Inside its turn, a
process that finds a round finished less than half a period ago skips too, so N servers cost about
what one does. Each round that ran is a `reaper_run` row (server, start, end, how many it ended).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, text

from ..tracker import schema as t
from ..tracker.database import one_transaction
from ..tracker.idempotency import prune

# Advisory lock keys (any 64-bit numbers no other part of the schema uses; migrate.py has 7420019).
REAPER_LOCK = 7420020
STARTUP_LOCK = 7420021
# Reaper rounds are kept this long (seconds): enough to see what happened, small enough to stay cheap.
KEEP_RUNS_SECONDS = 3600.0


def server_name() -> str:
    """This process as a reaper_run row names it."""
    return f"{socket.gethostname()} {os.getpid()}"[:255]


def reap_round(
    tracker: Any, lease: float, every: float, *, prune_keys: bool = False, name: str | None = None,
    mlflow_lease: float | None = None,
) -> list[int] | None:
    """One reaper round over the served database, if it is this process's turn: the ids it ended
    KILLED ("heartbeat lost"), or None when another process holds the turn or reaped just now.
    `prune_keys` also drops day-old idempotency keys in the same turn; `mlflow_lease` is the longer lease
    of runs logged through MLflow's API (they send no heartbeat)."""
    engine: Engine = tracker.engine
    with one_transaction(engine) as conn:
        postgres = engine.dialect.name == "postgresql"
        if postgres and not conn.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": REAPER_LOCK}).scalar():
            return None  # another server process is reaping now
        r = t.reaper_runs
        started = time.time()
        last = conn.execute(select(func.max(r.c.finished_at))).scalar()
        if last is not None and started - last < every / 2:
            return None
        # The reap joins this transaction (tracker/database.py).
        reaped = tracker.reap(lease, force=True, mlflow_lease=mlflow_lease)
        if prune_keys:
            prune(engine)
        conn.execute(delete(r).where(r.c.started_at < started - KEEP_RUNS_SECONDS))
        conn.execute(
            insert(r).values(
                server=name or server_name(), started_at=started, finished_at=time.time(), reaped=len(reaped)
            )
        )
        return reaped


@contextmanager
def startup_lock(engine: Engine) -> Iterator[None]:
    """One server process at a time through a start-up step (the administrator's password): on
    PostgreSQL a session advisory lock. On SQLite (one host) nothing: `diary server --workers N` runs
    the step once in its parent before the workers start, and each worker then finds it done."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": STARTUP_LOCK})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": STARTUP_LOCK})
            conn.commit()
