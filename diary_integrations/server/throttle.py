"""Login rate limits: failed logins counted per username and per client address in a fixed window.

The counters live in the database (table `login_failure`), so several server processes over one
PostgreSQL share them; a tracker without an engine (a test double) gets the same rules in memory.
While a subject has `limit` failures in the current window, its logins are answered 429 with
`Retry-After` (the seconds left in the window) without checking any password.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from ..tracker import schema as t
from ..tracker.database import read_transaction, write_transaction

USER, ADDRESS = "user", "address"
MAX_SUBJECT = 255


class FailureCounter(Protocol):
    def failures(self, scope: str, subject: str, window: float, now: float) -> tuple[int, float]: ...
    def record(self, scope: str, subject: str, window: float, now: float) -> None: ...
    def clear(self, scope: str, subject: str) -> None: ...


@dataclass
class MemoryCounter:
    """For a tracker without a database engine (one process only)."""

    rows: dict[tuple[str, str], tuple[float, int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def failures(self, scope: str, subject: str, window: float, now: float) -> tuple[int, float]:
        start, count = self.rows.get((scope, subject), (now, 0))
        return (0, now) if now - start >= window else (count, start)

    def record(self, scope: str, subject: str, window: float, now: float) -> None:
        with self.lock:
            start, count = self.rows.get((scope, subject), (now, 0))
            self.rows[(scope, subject)] = (now, 1) if now - start >= window else (start, count + 1)

    def clear(self, scope: str, subject: str) -> None:
        with self.lock:
            self.rows.pop((scope, subject), None)


class DatabaseCounter:
    """The counters as rows of `login_failure`, one per (scope, subject)."""

    def __init__(self, tracker: Any) -> None:
        self.tracker = tracker

    def failures(self, scope: str, subject: str, window: float, now: float) -> tuple[int, float]:
        f = t.login_failures
        with read_transaction(self.tracker.engine) as conn:
            row = conn.execute(
                select(f.c.window_start, f.c.failures).where(f.c.scope == scope, f.c.subject == subject)
            ).first()
        if row is None or now - row.window_start >= window:
            return 0, now
        return row.failures, row.window_start

    def record(self, scope: str, subject: str, window: float, now: float) -> None:
        f = t.login_failures
        where = (f.c.scope == scope, f.c.subject == subject)
        for _ in range(3):  # a racing first insert of the same subject is retried as an update
            try:
                with write_transaction(self.tracker.engine) as conn:
                    row = conn.execute(select(f.c.window_start, f.c.failures).where(*where).with_for_update()).first()
                    if row is None:
                        conn.execute(f.insert().values(scope=scope, subject=subject, window_start=now, failures=1))
                    elif now - row.window_start >= window:
                        conn.execute(update(f).where(*where).values(window_start=now, failures=1))
                    else:
                        conn.execute(update(f).where(*where).values(failures=f.c.failures + 1))
                    # Old windows are dropped as new failures come, so the table stays small.
                    conn.execute(delete(f).where(f.c.window_start < now - 2 * window))
                return
            except IntegrityError:
                continue

    def clear(self, scope: str, subject: str) -> None:
        f = t.login_failures
        with write_transaction(self.tracker.engine) as conn:
            conn.execute(delete(f).where(f.c.scope == scope, f.c.subject == subject))


class LoginThrottle:
    def __init__(self, settings: Any, counter_for: Any) -> None:
        self.window = float(settings.login_window_seconds)
        self.limits = {USER: settings.login_max_failures_per_user, ADDRESS: settings.login_max_failures_per_address}
        self._counter_for = counter_for  # () -> FailureCounter, for the tracker being served now

    @staticmethod
    def _subjects(username: str, address: str) -> list[tuple[str, str]]:
        return [(USER, username[:MAX_SUBJECT]), (ADDRESS, address[:MAX_SUBJECT])]

    def retry_after(self, username: str, address: str) -> int:
        """0 if a login may be tried now, else the whole seconds to wait."""
        now = time.time()
        counter = self._counter_for()
        wait = 0.0
        for scope, subject in self._subjects(username, address):
            count, start = counter.failures(scope, subject, self.window, now)
            if count >= self.limits[scope]:
                wait = max(wait, start + self.window - now)
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, username: str, address: str) -> None:
        now = time.time()
        counter = self._counter_for()
        for scope, subject in self._subjects(username, address):
            counter.record(scope, subject, self.window, now)

    def succeeded(self, username: str) -> None:
        """A right password clears its username's count (not the address's: one good account must not
        reset the count of an address guessing at others)."""
        self._counter_for().clear(USER, username[:MAX_SUBJECT])


def counter_for(app: Any) -> Any:
    memory = MemoryCounter()

    def current() -> FailureCounter:
        tracker = app.state.tracker
        return DatabaseCounter(tracker) if hasattr(tracker, "engine") else memory

    return current
