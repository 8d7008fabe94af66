"""Who is asking through MLflow's API: the MLflow client sends `MLFLOW_TRACKING_TOKEN` as a bearer token
(a diary token from `POST /auth`) and `MLFLOW_TRACKING_USERNAME`/`PASSWORD` as basic auth (a diary user's
name and password). Both become the same diary user, with the same per-project permissions.

A password is checked with the slow hash once, then remembered for a minute by a digest of the pair
(never the password itself): the MLflow client sends it on every request, and a run logs thousands. The
remembered user is still checked against its token generation on every request, so a password change or
logout-all ends it at once. Failed basic logins count towards the login rate limit, as `POST /auth` does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from typing import Any

from ...tracker.local import DEFAULT_USERNAME
from ...tracker.records import User
from ...tracker.validation import MAX_PASSWORD, MAX_USERNAME
from ..auth import _CHECKED, token_user
from ..errors import ApiError

REMEMBER_SECONDS = 60.0
_MAX_REMEMBERED = 1000


def _header(scope: dict[str, Any]) -> str | None:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)


def _address(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


def mlflow_user(scope: dict[str, Any], state: Any) -> User:
    """The diary user behind a request's bearer token or basic credentials (remembered in the scope, so
    the check made before the body is read is not repeated). Raises ApiError (401, 429)."""
    if not state.settings.enable_auth:
        user = state.anonymous
        if user is None:
            user = state.anonymous = state.tracker.get_user(DEFAULT_USERNAME)
        return user
    known = scope.get("state", {}).get(_CHECKED)
    if known is not None:
        return known
    header = _header(scope)
    if not header:
        raise ApiError(
            401,
            "TOKEN_MISSING",
            "Missing authorization: set MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD",
        )
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "basic":
        user = _basic_user(state, value.strip(), _address(scope))
    else:
        user = token_user(state, *state.tokens.user_id(header))
    scope.setdefault("state", {})[_CHECKED] = user
    return user


def _basic_user(state: Any, encoded: str, address: str) -> User:
    try:
        username, sep, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ApiError(401, "TOKEN_INVALID", "Invalid basic authorization header") from None
    if not sep:
        raise ApiError(401, "TOKEN_INVALID", "Invalid basic authorization header: expected user:password")
    remembered: dict[bytes, tuple[int, int, float]] = state.__dict__.setdefault("_mlflow_basic", {})
    digest = hmac.new(state.settings.jwt_secret.encode(), f"{username}\0{password}".encode(), hashlib.sha256).digest()
    now = time.monotonic()
    found = remembered.get(digest)
    if found is not None and found[2] > now:
        user_id, generation = found[0], found[1]
    else:
        throttle = state.login_throttle
        wait = throttle.retry_after(username, address)
        if wait:
            raise ApiError(
                429,
                "TOO_MANY_LOGINS",
                f"Too many failed logins; try again in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        user = None
        if len(username) <= MAX_USERNAME and len(password) <= MAX_PASSWORD:
            user = state.tracker.authenticate(username, password)
        if user is None:
            throttle.failed(username, address)
            raise ApiError(401, "INVALID_CREDENTIALS", "Invalid username or password")
        throttle.succeeded(username)
        if len(remembered) >= _MAX_REMEMBERED:
            remembered.clear()
        current = state.tracker.user_for_token(user.id)
        if current is None:
            raise ApiError(401, "INVALID_CREDENTIALS", "Invalid username or password")
        user_id, generation = user.id, current[1]
        remembered[digest] = (user_id, generation, now + REMEMBER_SECONDS)
    try:
        return token_user(state, user_id, generation)  # a password change since ends the remembered pair
    except ApiError:
        remembered.pop(digest, None)
        raise
