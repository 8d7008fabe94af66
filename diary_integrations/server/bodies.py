"""The base of every JSON request body: a field a route does not know is refused with a 422 naming it
(a DearDiary user's `PATCH /iteration/1 {"status": 3}` used to answer 200 and change nothing), and
where a status is written both DearDiary's `status_id` and `status` (the name GET returns) are taken."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, model_validator

Status = StrictInt | StrictStr


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StatusBody(RequestBody):
    """A body with `status_id`, which also takes `status` (one of them, or both the same)."""

    status: Status | None = None

    @model_validator(mode="after")
    def _one_status(self) -> Any:
        if self.status is None:
            return self
        given = "status_id" in self.model_fields_set
        if given and self.status_id is not None and self.status_id != self.status:  # type: ignore[attr-defined]
            raise ValueError("status and status_id disagree; send one of them")
        self.status_id = self.status  # type: ignore[attr-defined]
        return self
