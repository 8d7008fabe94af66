"""Parameters: text values, one per key and iteration."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    select,
)
from sqlalchemy.exc import IntegrityError

from .. import schema as t
from ..enums import Result
from ..errors import Conflict, Unprocessable
from ..records import (
    Created,
    Parameter,
)
from ..statements import can_hold, insert_row, insert_rows, select_where, update_row
from ..validation import (
    check_id,
    check_key,
    format_parameter_value,
)
from .base import (
    _UNSET,
    TrackerBase,
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
        if not isinstance(parameters, Mapping):
            raise Unprocessable("parameters must be a mapping of key to value", field="parameters")
        rows = {check_key(k): format_parameter_value(v, f"parameters[{k!r}]") for k, v in parameters.items()}
        if not rows:
            return 0
        p = t.parameters
        with self._write() as conn:
            self._writable_iteration(conn, iteration_id)
            existing = dict(select_where(conn, p, ("key", "value"), "iteration_id", iteration_id).all())
            for key, text in rows.items():
                if key in existing and existing[key] != text:
                    raise Conflict(
                        f"parameters[{key!r}]: already {existing[key]!r} on iteration {iteration_id}, "
                        f"cannot become {text!r}",
                        field="key",
                    )
            new = [{"iteration_id": iteration_id, "key": k, "value": v} for k, v in rows.items() if k not in existing]
            if new:
                insert_rows(conn, p, new)
        return len(new)

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
