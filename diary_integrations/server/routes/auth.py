"""POST /auth (log in), POST /auth/refresh, GET /auth/me, GET /health."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, StrictStr

from ... import __version__
from ...tracker.records import to_dict
from ..deps import Me, Tracker
from ..errors import ApiError

router = APIRouter()


class Login(BaseModel):
    username: StrictStr
    password: StrictStr


@router.get("/health", tags=["server"])
def health(request: Request) -> dict[str, Any]:
    return {
        "app_name": "diary-integrations",
        "package_version": __version__,
        "server_time": datetime.now(timezone.utc).isoformat(),
        "auth": request.app.state.settings.enable_auth,
    }


@router.post("/auth", tags=["auth"])
def login(body: Login, request: Request, tracker: Tracker) -> dict[str, Any]:
    """A bearer token for a username and password (the same answer for an unknown user and a wrong
    password, so the endpoint does not tell which usernames exist)."""
    user = tracker.authenticate(body.username, body.password)
    if user is None:
        raise ApiError(401, "INVALID_CREDENTIALS", "Invalid username or password")
    return request.app.state.tokens.issue(user)


@router.post("/auth/refresh", tags=["auth"])
def refresh(request: Request, me: Me) -> dict[str, Any]:
    return request.app.state.tokens.issue(me)


@router.get("/auth/me", tags=["auth"])
def whoami(me: Me) -> dict[str, Any]:
    return to_dict(me)
