"""A metric batch on PostgreSQL in one statement, one round trip: its idempotency key, the check that
the iteration still takes points, and every point, committed together (or none of them).

The points travel as four arrays (keys, values, steps, times) and are unnested by the database: no
statement per row, no row object per point on the way. The key is claimed with `ON CONFLICT DO NOTHING`
only when the iteration is writable, and the points are inserted only when the key was claimed, so a
refused or repeated request writes nothing. A request racing another with the same key waits for that
one's commit (PostgreSQL's unique index does) and then finds the stored answer, which it replays.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine, select

from . import schema as t
from .enums import IterationStatus
from .errors import Unprocessable
from .validation import check_datetime, checked_points

_STATE = (
    "SELECT 1 FROM iteration WHERE id = %(iteration)s AND status = %(running)s AND end_date IS NULL"
)
_POINTS = (
    "INSERT INTO metric (iteration_id, key, value, step, recorded_at) "
    "SELECT %(iteration)s, p.key, p.value, p.step, p.recorded_at FROM unnest("
    "%(keys)s::text[], %(values)s::float8[], %(steps)s::bigint[], %(whens)s::float8[]) "
    "AS p(key, value, step, recorded_at)"
)
# The latest-value table in the same statement (tracker/latest.py): each key's point at its highest step,
# the last in the batch there, replacing the stored one only for a step at least as high; in key order,
# as latest.record, so concurrent batches lock the rows alike. `{applied}` is the CTE that says the points
# went in.
_LATEST = (
    "INSERT INTO metric_latest (iteration_id, key, parent_iteration_id, value, step) "
    "SELECT DISTINCT ON (p.key) %(iteration)s, p.key, "
    "(SELECT parent_iteration_id FROM iteration WHERE id = %(iteration)s), p.value, p.step "
    "FROM unnest(%(keys)s::text[], %(values)s::float8[], %(steps)s::bigint[]) WITH ORDINALITY "
    "AS p(key, value, step, n) WHERE EXISTS (SELECT 1 FROM {applied}) ORDER BY p.key, p.step DESC, p.n DESC "
    "ON CONFLICT (iteration_id, key) DO UPDATE SET value = excluded.value, step = excluded.step "
    "WHERE excluded.step >= metric_latest.step"
)
KEYED = (
    f"WITH writable AS ({_STATE}), "
    "claim AS (INSERT INTO idempotency_key (key, user_id, request_hash, status_code, response, created_date) "
    "SELECT %(key)s, %(user)s, %(purpose)s, %(status)s, %(response)s, %(now)s FROM writable "
    "ON CONFLICT (key) DO NOTHING RETURNING 1), "
    f"added AS ({_POINTS} WHERE EXISTS (SELECT 1 FROM claim)), "
    f"latest AS ({_LATEST.format(applied='claim')}) "
    "SELECT (SELECT count(*) FROM writable), (SELECT count(*) FROM claim)"
)
UNKEYED = (
    f"WITH writable AS ({_STATE}), added AS ({_POINTS} WHERE EXISTS (SELECT 1 FROM writable)), "
    f"latest AS ({_LATEST.format(applied='writable')}) "
    "SELECT (SELECT count(*) FROM writable), 1"
)


@dataclass
class Claim:
    """The idempotency key a batch is sent with, and the answer stored with it if the batch is applied."""

    key: str
    purpose: str
    user_id: int | None
    status: int
    response: str


@dataclass(frozen=True)
class Columns:
    """Validated points as four PostgreSQL array literals (keys, values, steps, times), passed as text that
    the database parses. Building them is a join over `repr`s; letting the driver adapt four Python lists
    cost about seven times the CPU per batch, the largest cost of this route under load."""

    count: int
    keys: str
    values: str
    steps: str
    whens: str


def point_columns(points: Sequence[Any]) -> Columns:
    """Validated points as array literals (NaN as NULL), or `Unprocessable` naming the bad point."""
    keys: list[str] = []
    values: list[str] = []
    steps: list[str] = []
    whens: list[str] = []
    quoted: dict[str, str] = {}
    now = repr(time.time())
    for key, value, step, when in checked_points(points):
        text = quoted.get(key)
        if text is None:
            text = quoted[key] = _quoted(key)
        keys.append(text)
        # repr() is the shortest text that reads back as the same double (PostgreSQL parses it exactly).
        values.append(repr(value) if value - value == 0.0 else _non_finite(value))
        steps.append(str(step))
        whens.append(now if when is None else repr(check_datetime(when, "recorded_at").timestamp()))
    return Columns(len(keys), _array(keys), _array(values), _array(steps), _array(whens))


def _array(items: list[str]) -> str:
    return "{" + ",".join(items) + "}"


def _quoted(key: str) -> str:
    """A text element of an array literal: in double quotes, with backslashes and quotes escaped (commas,
    braces and spaces inside the quotes are plain text)."""
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _non_finite(value: float) -> str:
    if value != value:
        return "NULL"  # NaN is stored as NULL, as everywhere else
    return "Infinity" if value > 0 else "-Infinity"


def insert_points(engine: Engine, iteration_id: int, columns: Columns, claim: Claim | None) -> tuple[int, str] | None:
    """Write the batch in one autocommitted statement. None when it was applied now; the stored
    `(status, response)` when its key was applied before. Refuses (writing nothing) an iteration that
    is missing or has ended, and a key used before for another request."""
    params: dict[str, Any] = {"iteration": iteration_id, "running": int(IterationStatus.RUNNING), "keys": columns.keys,
                              "values": columns.values, "steps": columns.steps, "whens": columns.whens}
    if claim is not None:
        params.update(key=claim.key, user=claim.user_id, purpose=claim.purpose, status=claim.status,
                      response=claim.response, now=datetime.now(timezone.utc).replace(tzinfo=None))
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        writable, claimed = conn.exec_driver_sql(KEYED if claim is not None else UNKEYED, params).one()
        if writable and claimed:
            return None
        if claim is not None:
            k = t.idempotency_keys
            stored = conn.execute(
                select(k.c.request_hash, k.c.user_id, k.c.status_code, k.c.response).where(k.c.key == claim.key)
            ).first()
            if stored is not None:
                if stored.request_hash != claim.purpose or stored.user_id != claim.user_id:
                    raise Unprocessable(f"idempotency_key: {claim.key} was already used for another request",
                                        field="idempotency_key")
                return stored.status_code, stored.response
        state = conn.execute(select(t.iterations.c.status).where(t.iterations.c.id == iteration_id)).first()
    if state is None:
        raise Unprocessable(f"iteration_id: iteration {iteration_id} does not exist", field="iteration_id")
    raise Unprocessable(
        f"iteration_id: iteration {iteration_id} has ended ({IterationStatus(state.status).name}) "
        "and takes no new parameters or metrics",
        field="iteration_id",
    )
