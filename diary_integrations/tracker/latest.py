"""The latest-value table (schema.metric_latest), kept in step with the metric series.

Every write of metric points calls `record` in the same transaction, with the rows it inserted: the
rows are reduced in Python to one per (iteration, key) (the highest step; at one step, the last row),
then upserted with one executemany, replacing a stored value only for a step at least as high. So a
batch of 1,000 steps of three keys costs three upserts, not 1,000 (a database trigger would run one per
point, and doubled the cost of a batch on SQLite). A point changed or deleted afterwards is rare:
`refresh` reads the key's latest point back from the series.

"Latest" is the point at the highest step, the last written there, as `get_latest_metrics` always read
it (the newest id at the highest step: ids grow with each write on SQLite, whose writers take turns).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection

_UPSERT = (
    "INSERT INTO metric_latest (iteration_id, key, parent_iteration_id, value, step) "
    "VALUES ({m}, {m}, (SELECT parent_iteration_id FROM iteration WHERE id = {m}), {m}, {m}) "
    "ON CONFLICT (iteration_id, key) DO UPDATE SET value = excluded.value, step = excluded.step "
    "WHERE excluded.step >= metric_latest.step"
)
_FORGET = "DELETE FROM metric_latest WHERE iteration_id = {m} AND key = {m}"
_REREAD = (
    "INSERT INTO metric_latest (iteration_id, key, parent_iteration_id, value, step) "
    "SELECT m.iteration_id, m.key, it.parent_iteration_id, m.value, m.step FROM metric m "
    "JOIN iteration it ON it.id = m.iteration_id WHERE m.iteration_id = {m} AND m.key = {m} "
    "ORDER BY m.step DESC, m.id DESC LIMIT 1"
)
# Every iteration's latest point of every key, from the series (migration 0012 fills the table with it).
BACKFILL = (
    "INSERT INTO metric_latest (iteration_id, key, parent_iteration_id, value, step) "
    "SELECT ranked.iteration_id, ranked.key, it.parent_iteration_id, ranked.value, ranked.step FROM ("
    "SELECT iteration_id, key, value, step, "
    "ROW_NUMBER() OVER (PARTITION BY iteration_id, key ORDER BY step DESC, id DESC) AS n FROM metric"
    ") AS ranked JOIN iteration it ON it.id = ranked.iteration_id WHERE ranked.n = 1"
)
_SQL: dict[tuple[str, str], str] = {}


def _sql(conn: Connection, template: str) -> str:
    """`template` with the driver's own placeholder (qmark on SQLite, format on psycopg)."""
    style = conn.dialect.paramstyle
    sql = _SQL.get((template, style))
    if sql is None:
        sql = _SQL[(template, style)] = template.format(m="?" if style == "qmark" else "%s")
    return sql


def newest(rows: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """`(iteration_id, key, value, step, ...)` rows reduced to the latest of each (iteration, key): the
    highest step, the later row at one step. Sorted by (iteration, key), so concurrent writers on
    PostgreSQL lock the rows they upsert in one order and cannot deadlock."""
    found: dict[tuple[Any, Any], tuple[Any, ...]] = {}
    for row in rows:
        held = found.get((row[0], row[1]))
        if held is None or row[3] >= held[3]:
            found[(row[0], row[1])] = row
    return [found[pair] for pair in sorted(found)]


def record(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Bring the table up to date with metric rows `(iteration_id, key, value, step, ...)` just inserted
    on `conn` (NaN already None, as stored)."""
    if rows:
        conn.exec_driver_sql(_sql(conn, _UPSERT), [(r[0], r[1], r[0], r[2], r[3]) for r in newest(rows)])


def refresh(conn: Connection, iteration_id: int, key: str) -> None:
    """Read one key's latest point back from the series, after a point of it changed or went away."""
    conn.exec_driver_sql(_sql(conn, _FORGET), (iteration_id, key))
    conn.exec_driver_sql(_sql(conn, _REREAD), (iteration_id, key))
