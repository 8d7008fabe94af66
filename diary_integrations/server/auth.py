"""Bearer JWTs (HS256, 24 h) and who is asking. With auth off every request acts as `default`.

A token names its user by id and carries the user's token generation (`gen`) at issue; every request
compares it with the stored one, so a password change, a deletion or `POST /auth/logout-all` (which bump
or remove it) ends every older token at once. Ids are never reused, so a deleted user's token cannot
come to name someone else.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt
from fastapi import Request

from ..tracker.local import DEFAULT_USERNAME
from ..tracker.records import User, to_dict
from .errors import ApiError


@dataclass(frozen=True)
class TokenService:
    secret: str
    ttl_seconds: int

    def issue(self, user: User, generation: int) -> dict[str, Any]:
        """The login answer: the token, when it expires (unix seconds) and who it is for."""
        now = int(time.time())
        expires_at = now + self.ttl_seconds
        claims = {"sub": user.username, "id": user.id, "gen": generation, "iat": now, "exp": expires_at}
        token = jwt.encode(claims, self.secret, algorithm="HS256")
        return {"access_token": token, "token_type": "Bearer", "expires_at": expires_at, "user": to_dict(user)}

    def user_id(self, header: str | None) -> tuple[int, int]:
        """The user id and token generation a request's `Authorization: Bearer <token>` header vouches for."""
        if not header:
            raise ApiError(401, "TOKEN_MISSING", "Missing authorization header")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "TOKEN_INVALID", "Invalid token: expected 'Bearer <token>'")
        return self.claims(token.strip())

    def claims(self, token: str) -> tuple[int, int]:
        """The user id and generation of a token (a bearer token or the dashboard's session cookie)."""
        try:
            claims = jwt.decode(
                token, self.secret, algorithms=["HS256"], options={"require": ["exp", "sub", "id", "gen"]}
            )
        except jwt.ExpiredSignatureError:
            raise ApiError(401, "TOKEN_EXPIRED", "Token has expired") from None
        except jwt.MissingRequiredClaimError as exc:
            raise ApiError(401, "TOKEN_PAYLOAD_INVALID", f"Invalid token payload: {exc}") from None
        except jwt.InvalidTokenError:
            raise ApiError(401, "TOKEN_INVALID", "Invalid token") from None
        user_id = claims.get("id")
        if isinstance(user_id, bool) or not isinstance(user_id, int) or user_id <= 0:
            raise ApiError(401, "TOKEN_PAYLOAD_INVALID", "Invalid token payload: id must be a positive integer")
        generation = claims.get("gen")
        if isinstance(generation, bool) or not isinstance(generation, int) or generation < 0:
            raise ApiError(401, "TOKEN_PAYLOAD_INVALID", "Invalid token payload: gen must be a whole number")
        return user_id, generation


def current_user(request: Request) -> User:
    """Who is asking: the token's user, or `default` when auth is off."""
    return scope_user(request.app.state, request.scope)


def scope_user(state: Any, scope: dict[str, Any]) -> User:
    """`current_user` from the app's state and a request's ASGI scope (no Request object needed)."""
    if not state.settings.enable_auth:
        user = state.anonymous
        if user is None:
            user = state.anonymous = state.tracker.get_user(DEFAULT_USERNAME)
        return user
    known = scope.get("state", {}).get(_CHECKED)
    if known is not None:  # checked already, before the body was read (BodyLimit)
        return known
    header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
    user = token_user(state, *state.tokens.user_id(header))
    scope.setdefault("state", {})[_CHECKED] = user
    return user


_CHECKED = "diary_user"


def token_user(state: Any, user_id: int, generation: int) -> User:
    """The user a valid token names, if the token is still current."""
    found = state.tracker.user_for_token(user_id)
    if found is None:
        raise ApiError(401, "USER_NOT_FOUND", "User not found")
    user, current = found
    if generation != current:
        raise ApiError(401, "TOKEN_REVOKED", "Token has been revoked (password change or logout); log in again")
    return user


def authenticate_early(scope: dict[str, Any], state: Any) -> User:
    """Check a request's bearer token from its ASGI scope (before its body is read); remembered for
    `current_user`. Raises ApiError."""
    header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
    user = token_user(state, *state.tokens.user_id(header))
    scope.setdefault("state", {})[_CHECKED] = user
    return user


def require_admin(user: User) -> None:
    if not user.is_admin:
        raise ApiError(403, "ADMIN_REQUIRED", "Administrator privileges are required")


def require_same_user_or_admin(user: User, user_id: int) -> None:
    if not user.is_admin and user.id != user_id:
        raise ApiError(403, "SAME_USER_REQUIRED", "Only this user or an administrator may do this")
