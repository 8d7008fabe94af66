"""Exactly-once writes: a write that carries an idempotency key is applied once.

The key is recorded in the same transaction as the write it guards, so a server killed after the
commit but before its answer left still knows the write happened: the client's retry, sent with the
same key, is answered with the first result instead of being applied again. Keys live in the
database (they survive restarts) and are pruned after a day.

`applied_once` is the mechanism; the server wraps its write routes in it (storing the HTTP answer),
and `LocalTracker` methods honour a key given with `using_key` (storing the method's return value).
The calling side of keys (their form, `using_key`) is keys.py, re-exported here.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from . import schema as t
from .database import one_transaction, write_transaction
from .enums import Result
from .errors import Unprocessable
from .keys import HEADER, MAX_KEY_LENGTH, check_key, current, current_key, new_key, using_key  # noqa: F401 - re-exported
from .records import Created

F = TypeVar("F", bound=Callable[..., Any])

KEY_TTL = timedelta(days=1)


def request_hash(*parts: object) -> str:
    """What a key was first used for: the same key sent for another request is refused."""
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()


@dataclass
class Slot:
    """One keyed write. `replay` is the stored answer when the key was applied before (the body must
    then not write again); otherwise the body writes and calls `store` with its answer."""

    key: str
    replay: tuple[int, str] | None
    _conn: Connection | None = None

    def store(self, status_code: int, response: str) -> None:
        assert self._conn is not None and self.replay is None
        k = t.idempotency_keys
        self._conn.execute(update(k).where(k.c.key == self.key).values(status_code=status_code, response=response))


@contextmanager
def applied_once(engine: Engine, key: str, purpose: str, user_id: int | None = None) -> Iterator[Slot]:
    """Run a keyed write in one transaction with its key. A key seen before yields its stored answer; a
    key seen for another purpose or user is `Unprocessable`. Two requests racing with one key: the
    second waits for the first's commit and then replays it."""
    key = check_key(key)
    with one_transaction(engine) as conn:
        row = _stored(conn, key) or _claim(conn, key, purpose, user_id)
        if row is None:
            yield Slot(key, None, conn)
            return
        if row.request_hash != purpose or row.user_id != user_id:
            raise Unprocessable(f"idempotency_key: {key} was already used for another request", field="idempotency_key")
        yield Slot(key, (row.status_code, row.response))


def claim_or_replay(conn: Connection, key: str, purpose: str, user_id: int | None) -> tuple[int, str] | None:
    """Inside a write transaction: claim `key` for this write (None: go on and write, then `store_answer`),
    or the stored `(status, answer)` when it was applied before. A key used for another purpose or by
    another user is `Unprocessable`. The multi-iteration metric batch claims one key per group this way."""
    key = check_key(key)
    row = _stored(conn, key) or _claim(conn, key, purpose, user_id)
    if row is None:
        return None
    if row.request_hash != purpose or row.user_id != user_id:
        raise Unprocessable(f"idempotency_key: {key} was already used for another request", field="idempotency_key")
    return row.status_code, row.response


def store_answer(conn: Connection, key: str, status_code: int, response: str) -> None:
    """The answer of a write whose key `claim_or_replay` claimed in this transaction."""
    k = t.idempotency_keys
    conn.execute(update(k).where(k.c.key == key).values(status_code=status_code, response=response))


def _claim(conn: Connection, key: str, purpose: str, user_id: int | None):  # type: ignore[no-untyped-def]
    """Record the key; None once it is ours. Another transaction may have recorded it between our look
    and our insert (PostgreSQL): the insert then waits for its commit and fails, and the row is read."""
    try:
        with conn.begin_nested():
            conn.execute(insert(t.idempotency_keys).values(
                key=key, user_id=user_id, request_hash=purpose, status_code=0, response="",
                created_date=datetime.now(timezone.utc),
            ))
        return None
    except IntegrityError:
        return _stored(conn, key)


def _stored(conn: Connection, key: str):  # type: ignore[no-untyped-def]
    k = t.idempotency_keys
    stmt = select(k.c.request_hash, k.c.user_id, k.c.status_code, k.c.response).where(k.c.key == key)
    return conn.execute(stmt).first()


def prune(engine: Engine, older_than: timedelta = KEY_TTL) -> int:
    """Forget keys older than `older_than` (a day): a retry never comes that late."""
    cutoff = datetime.now(timezone.utc) - older_than
    with write_transaction(engine) as conn:
        return conn.execute(delete(t.idempotency_keys).where(t.idempotency_keys.c.created_date < cutoff)).rowcount


def keyed_once(method: F) -> F:
    """A LocalTracker write that, called inside `using_key(key)`, is applied once per key: a repeat
    returns the first call's value. Without a key it is the method as it was."""
    purpose = request_hash("LocalTracker", method.__name__)

    @functools.wraps(method)
    def once(self: Any, *args: Any, **kwargs: Any) -> Any:
        key = current.get()
        if key is None:
            return method(self, *args, **kwargs)
        token = current.set(None)  # the key names this write, not the calls it makes
        try:
            with applied_once(self.engine, key, purpose) as slot:
                if slot.replay is not None:
                    return _decoded(slot.replay[1])
                result = method(self, *args, **kwargs)
                slot.store(200, _encoded(result))
                return result
        finally:
            current.reset(token)

    once.keyed = True  # type: ignore[attr-defined] - a sidecar may send such a call again (sidecar/)
    return once  # type: ignore[return-value]


def _encoded(result: Any) -> str:
    if isinstance(result, Created):
        return json.dumps({"created": [result.id, result.result.value]})
    if isinstance(result, Result):
        return json.dumps({"result": result.value})
    return json.dumps({"value": result})


def _decoded(text: str) -> Any:
    stored = json.loads(text)
    if "created" in stored:
        return Created(stored["created"][0], Result(stored["created"][1]))
    if "result" in stored:
        return Result(stored["result"])
    return stored["value"]
