"""Statements built once and reused: building a SQLAlchemy statement costs more than running it on
SQLite, so the per-call paths (get by id, insert a row, update a row) go through these caches."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import BigInteger, Column, Connection, Insert, Select, Table, Update, bindparam, insert, select, update


@functools.cache
def by_id(table: Table) -> Select[Any]:
    """`SELECT * FROM table WHERE id = :_id`."""
    return select(table).where(table.c.id == bindparam("_id"))


@functools.cache
def _inserter(table: Table) -> Insert:
    return insert(table)


@functools.cache
def _updater(table: Table, columns: tuple[str, ...]) -> Update:
    # Bind names are prefixed: SQLAlchemy reserves bare column names for its own SET parameters.
    return update(table).where(table.c.id == bindparam("_id")).values({c: bindparam(f"v_{c}") for c in columns})


def can_hold(column: Column[Any], id_: int) -> bool:
    """Whether an id fits the column's declared range (64-bit for BigInteger, else 32-bit). An id beyond
    it names no row on any backend, so reads treat it as missing instead of sending it to the database."""
    return id_ <= (2**63 - 1 if isinstance(column.type, BigInteger) else 2**31 - 1)


def fetch_by_id(conn: Connection, table: Table, id_: int) -> Any:
    if not can_hold(table.c.id, id_):
        return None
    return conn.execute(by_id(table), {"_id": id_}).first()


def insert_row(conn: Connection, table: Table, values: dict[str, Any]) -> int:
    """Insert one row and return its new primary key."""
    return conn.execute(_inserter(table), values).inserted_primary_key[0]


def insert_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert several rows with one executemany."""
    conn.execute(_inserter(table), rows)


def update_row(conn: Connection, table: Table, id_: int, values: dict[str, Any]) -> None:
    columns = tuple(sorted(values))
    conn.execute(_updater(table, columns), {"_id": id_, **{f"v_{c}": values[c] for c in columns}})


def update_rows(conn: Connection, table: Table, changes: list[tuple[int, dict[str, Any]]]) -> None:
    """Update several rows by id, one executemany per set of changed columns."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for id_, values in changes:
        columns = tuple(sorted(values))
        groups.setdefault(columns, []).append({"_id": id_, **{f"v_{c}": values[c] for c in columns}})
    for columns, params in groups.items():
        conn.execute(_updater(table, columns), params)
