"""The metric write path, kept cheap: statements built once, points validated in a tight loop, and
rows handed to the driver's executemany as plain tuples (no per-row SQLAlchemy bind processing)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update

from . import latest
from . import schema as t
from .errors import Unprocessable
from .validation import MAX_STEP, check_datetime, check_key, check_metric_value, check_step, checked_points

_it = t.iterations
_m = t.metrics

ITERATION_STATE = select(_it.c.status, _it.c.end_date).where(_it.c.id == bindparam("id"))
# "id" is reserved by SQLAlchemy in an UPDATE (it names the SET column), so the key is "iteration".
TOUCH_HEARTBEAT = update(_it).where(_it.c.id == bindparam("iteration")).values(heartbeat_date=bindparam("now"))
LAST_STEPS = (
    select(_m.c.key, func.max(_m.c.step))
    .where(_m.c.iteration_id == bindparam("id"), _m.c.key.in_(bindparam("keys", expanding=True)))
    .group_by(_m.c.key)
)

COLUMNS = ("iteration_id", "key", "value", "step", "recorded_at")
# One point with its new id back (RETURNING on PostgreSQL, lastrowid on SQLite).
INSERT_ONE = insert(_m).values({c: bindparam(c) for c in COLUMNS})
_INSERT_SQL: dict[str, str] = {}


def insert_sql(conn: Connection) -> str:
    """`INSERT INTO metric ...` in the driver's own placeholder style."""
    style = conn.dialect.paramstyle
    sql = _INSERT_SQL.get(style)
    if sql is None:
        mark = "?" if style == "qmark" else "%s"
        sql = _INSERT_SQL[style] = f"INSERT INTO metric ({', '.join(COLUMNS)}) VALUES ({', '.join([mark] * 5)})"
    return sql


def insert_rows(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Rows are `(iteration_id, key, value, step, recorded_at_epoch)`; NaN values must already be None.
    The latest-value table moves with them, in the same transaction."""
    conn.exec_driver_sql(insert_sql(conn), rows)
    latest.record(conn, rows)


def metric_rows(iteration_id: int, points: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Validate `(key, value, step[, recorded_at])` points into insertable rows, or raise naming the point."""
    now = time.time()
    return [
        (iteration_id, key, value if value == value else None, step,
         now if when is None else check_datetime(when, "recorded_at").timestamp())
        for key, value, step, when in checked_points(points)
    ]


def single_row(iteration_id: int, key: str, value: float, step: int | None, when: float) -> list[Any]:
    """One validated point as a mutable row (the step may still be filled in)."""
    key = check_key(key)
    value = check_metric_value(value)
    return [iteration_id, key, value if value == value else None, None if step is None else check_step(step), when]


def next_steps(conn: Connection, iteration_id: int, keys: list[str]) -> dict[str, int]:
    """Each key's next auto step: one past its highest, 0 for a new key."""
    found = dict(conn.execute(LAST_STEPS, {"id": iteration_id, "keys": keys}).all())
    for key, last in found.items():
        if last >= MAX_STEP:
            raise Unprocessable(
                f"step of {key!r} would pass {MAX_STEP}, the largest a 64-bit step holds: "
                "give the next step explicitly",
                field="step",
            )
    return {k: (found[k] + 1 if k in found else 0) for k in keys}

