"""Parameters: text values, one per key and iteration."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..tracker.enums import Result
from ..tracker.records import (
    Created,
    Parameter,
)
from ..tracker.validation import (
    check_id,
    check_key,
    checked_parameters,
    format_parameter_value,
)
from .base import (
    _UNSET,
    _id_path,
)
from .journaling import JournalMixin


class ParametersMixin(JournalMixin):
    # -- parameters -------------------------------------------------------------------------------

    def create_parameter(self, iteration_id: int, key: str, value: Any) -> Created:
        """A parameter, stored as text. A key is set once per iteration (Conflict otherwise)."""
        body = {"key": check_key(key), "value": format_parameter_value(value)}
        path = f"/parameter/iteration/{check_id(iteration_id, 'iteration_id')}"
        return self._created(self._call("POST", path, body=body), "parameter")

    def log_parameters(self, iteration_id: int, parameters: Mapping[str, Any]) -> int:
        """Set several parameters in one transaction, all or nothing; a key already set to the same
        value is skipped. Returns how many were written."""
        iteration_id = check_id(iteration_id, "iteration_id")
        rows = checked_parameters(parameters)
        if not rows:
            return 0
        return int(self._write_or_journal(
            iteration_id, "parameters", len(rows), f"/parameter/iteration/{iteration_id}/batch", {"parameters": rows}
        ))

    def get_parameter(self, parameter_id: int) -> Parameter | None:
        return self._one(Parameter, _id_path("/parameter/{}", parameter_id, "parameter_id"))

    def get_parameters(self, iteration_id: int, *, limit: int | None = None, offset: int = 0) -> list[Parameter]:
        return self._list(Parameter, _id_path("/parameter/iteration/{}", iteration_id, "iteration_id"), limit, offset)

    def update_parameter(self, parameter_id: int, *, key: str | None = None, value: Any = _UNSET) -> Result:
        body: dict[str, Any] = {} if key is None else {"key": check_key(key)}
        if value is not _UNSET:
            body["value"] = format_parameter_value(value)
        self._call("PATCH", f"/parameter/{check_id(parameter_id, 'parameter_id')}", body=body)
        return Result.UPDATED

    def delete_parameter(self, parameter_id: int) -> bool:
        return self._deleted(_id_path("/parameter/{}", parameter_id, "parameter_id"))
