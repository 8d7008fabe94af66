"""Parameters: text values, one per key and iteration."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    select,
)
from sqlalchemy.exc import IntegrityError

from .. import schema as t
from ..enums import Result
from ..errors import Conflict
from ..records import (
    Created,
    Parameter,
)
from ..statements import can_hold, insert_row, insert_rows, update_row
from ..validation import (
    check_id,
    check_key,
    checked_parameters,
    format_parameter_value,
)
from .base import (
    _UNSET,
    TrackerBase,
    _chunks,
    _none_stored,
    _paged,
    _record,
)


class ParametersMixin(TrackerBase):

    def create_parameter(self, iteration_id: int, key: str, value: Any) -> Created:
        """A parameter, stored as text. A key is set once per iteration (Conflict otherwise)."""
        iteration_id = check_id(iteration_id, "iteration_id")
        key = check_key(key)
        text = format_parameter_value(value)
        p = t.parameters
        with self._write() as conn:
            self._writable_iteration(conn, iteration_id)
            if conn.execute(select(p.c.id).where(p.c.iteration_id == iteration_id, p.c.key == key)).first():
                raise Conflict(f"key: parameter {key!r} is already set on iteration {iteration_id}", field="key")
            new_id = insert_row(conn, p, {"iteration_id": iteration_id, "key": key, "value": text})
        return Created(new_id, Result.CREATED)

    def log_parameters(self, iteration_id: int, parameters: Mapping[str, Any]) -> int:
        """Set several parameters in one transaction, all or nothing. A key already set to the same
        value is skipped (so a re-run of the same logging is harmless); a different value is a Conflict.
        Returns how many were written."""
        iteration_id = check_id(iteration_id, "iteration_id")
        rows = checked_parameters(parameters)
        if not rows:
            return 0
        with self._write() as conn:
            self._writable_iteration(conn, iteration_id)
            return store_parameters(conn, {iteration_id: rows})

    def get_parameter(self, parameter_id: int) -> Parameter | None:
        return _record(Parameter, self._fetch_one(t.parameters, parameter_id, "parameter_id"))

    def get_parameters(self, iteration_id: int, *, limit: int | None = None, offset: int = 0) -> list[Parameter]:
        iteration_id = check_id(iteration_id, "iteration_id")
        p = t.parameters
        if not can_hold(p.c.iteration_id, iteration_id):
            return _none_stored(limit, offset)
        stmt = select(p).where(p.c.iteration_id == iteration_id).order_by(p.c.id)
        with self._read() as conn:
            return [_record(Parameter, r) for r in conn.execute(_paged(stmt, limit, offset))]

    def update_parameter(self, parameter_id: int, *, key: str | None = None, value: Any = _UNSET) -> Result:
        parameter_id = check_id(parameter_id, "parameter_id")
        values: dict[str, Any] = {}
        if key is not None:
            values["key"] = check_key(key)
        if value is not _UNSET:
            values["value"] = format_parameter_value(value)
        with self._write() as conn:
            row = self._require(conn, t.parameters, parameter_id, "parameter_id")
            self._writable_iteration(conn, row.iteration_id)
            if values:
                try:
                    update_row(conn, t.parameters, parameter_id, values)
                except IntegrityError:
                    raise Conflict(f"key: parameter {key!r} is already set on this iteration", field="key") from None
        return Result.UPDATED

    def delete_parameter(self, parameter_id: int) -> bool:
        return self._delete(t.parameters, parameter_id, "parameter_id")


_SET_ON = select(t.parameters.c.iteration_id, t.parameters.c.key, t.parameters.c.value).where(
    t.parameters.c.iteration_id.in_(bindparam("ids", expanding=True))
)


def store_parameters(conn: Connection, rows_by_iteration: dict[int, dict[str, str]]) -> int:
    """Insert checked parameter rows (per iteration id) inside the caller's transaction: a key already set
    to the same text is skipped, a different text is a Conflict (and the caller's transaction rolls back).
    Returns how many were written."""
    p = t.parameters
    ids = [i for i, rows in rows_by_iteration.items() if rows]
    existing: dict[tuple[int, str], str] = {}
    for chunk in _chunks(ids):
        existing.update(((row.iteration_id, row.key), row.value) for row in conn.execute(_SET_ON, {"ids": chunk}))
    new = []
    for iteration_id in ids:
        for key, text in rows_by_iteration[iteration_id].items():
            old = existing.get((iteration_id, key))
            if old is None:
                new.append({"iteration_id": iteration_id, "key": key, "value": text})
            elif old != text:
                raise Conflict(
                    f"parameters[{key!r}]: already {old!r} on iteration {iteration_id}, cannot become {text!r}",
                    field="key",
                )
    if new:
        insert_rows(conn, p, new)
    return len(new)
