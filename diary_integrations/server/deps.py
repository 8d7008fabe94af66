"""Shared route parameters: the tracker, the caller, and bounded ids."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request

from ..tracker.records import User
from .auth import current_user
from .responses import MAX_INT64


def get_tracker(request: Request) -> Any:
    return request.app.state.tracker


Tracker = Annotated[Any, Depends(get_tracker)]
Me = Annotated[User, Depends(current_user)]
# Ids are positive; the upper bound keeps a 30-digit id from reaching the database as an overflow.
PathId = Annotated[int, Path(ge=1, le=MAX_INT64)]
OptionalId = Annotated[int | None, Query(ge=1, le=MAX_INT64)]
Limit = Annotated[int | None, Query(ge=0, le=MAX_INT64, description="page size (default 100; capped per route)")]
Offset = Annotated[int, Query(ge=0, le=MAX_INT64)]
