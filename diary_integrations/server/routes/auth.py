"""POST /auth (log in), POST /auth/refresh, POST /auth/logout-all, GET /auth/me, GET /health,
/health/live and /health/ready."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from pydantic import StrictStr

from ... import __version__
from ...tracker.records import to_dict
from ..availability import database_ready, database_unavailable
from ..bodies import RequestBody
from ..deps import Me, Tracker
from ..encoding import ACCEPTED_ENCODINGS
from ..errors import ApiError
from ..login import check_login
from ..responses import FastJSON

router = APIRouter()


class Login(RequestBody):
    username: StrictStr
    password: StrictStr


@router.get("/health", tags=["server"])
async def health(request: Request) -> dict[str, Any]:
    # async: touches no database, so it answers from the event loop even when every thread is busy.
    state = request.app.state
    settings = state.settings
    return {
        "database": "available" if state.database.available else "unavailable",  # as last seen
        "app_name": "diary-integrations",
        "package_version": __version__,
        "server_time": datetime.now(timezone.utc).isoformat(),
        "auth": settings.enable_auth,
        "max_request_bytes": settings.max_request_bytes,  # the client cuts its batches to fit
        "request_encodings": list(ACCEPTED_ENCODINGS),  # the client compresses large bodies if gzip is here
        "multi_iteration_batch": True,  # POST /metric/batch: a writer sends several runs' points in one request
    }


@router.get("/health/live", tags=["server"])
async def live() -> dict[str, str]:
    """200 while the process serves requests, whatever the database does (a restart would not help)."""
    return {"status": "live"}


@router.get("/health/ready", tags=["server"])
async def ready(request: Request) -> FastJSON:
    """200 when the database answers now, else 503 DATABASE_UNAVAILABLE with Retry-After (take this
    server out of a load balancer's rotation until it is back)."""
    if await database_ready(request.app):
        return FastJSON({"status": "ready", "database": "available"})
    return database_unavailable(request.app.state.settings.retry_after_seconds)


@router.post("/auth", tags=["auth"])
async def login(body: Login, request: Request) -> dict[str, Any]:
    """A bearer token for a username and password (the same answer, in about the same time, for an
    unknown user and a wrong password). Too many failures for a username or a client address in
    `DIARY_LOGIN_WINDOW_SECONDS` are answered 429 with `Retry-After`."""
    user, generation = await check_login(request, body.username, body.password)
    return request.app.state.tokens.issue(user, generation)


@router.post("/auth/refresh", tags=["auth"])
def refresh(request: Request, tracker: Tracker, me: Me) -> dict[str, Any]:
    found = tracker.user_for_token(me.id)
    if found is None:
        raise ApiError(401, "USER_NOT_FOUND", "User not found")
    return request.app.state.tokens.issue(*found)


@router.post("/auth/logout-all", tags=["auth"])
def logout_all(tracker: Tracker, me: Me) -> dict[str, str]:
    """End every token of the caller (this one included), on every device."""
    tracker.revoke_tokens(me.id)
    return {"result": "logged out"}


@router.get("/auth/me", tags=["auth"])
def whoami(me: Me) -> dict[str, Any]:
    return to_dict(me)
