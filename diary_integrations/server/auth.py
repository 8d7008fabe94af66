"""Bearer JWTs (HS256, 24 h) and who is asking. With auth off every request acts as `default`."""

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

    def issue(self, user: User) -> dict[str, Any]:
        """The login answer: the token, when it expires (unix seconds) and who it is for."""
        now = int(time.time())
        expires_at = now + self.ttl_seconds
        claims = {"sub": user.username, "id": user.id, "iat": now, "exp": expires_at}
        token = jwt.encode(claims, self.secret, algorithm="HS256")
        return {"access_token": token, "token_type": "Bearer", "expires_at": expires_at, "user": to_dict(user)}

    def user_id(self, header: str | None) -> int:
        """The user id a request's `Authorization: Bearer <token>` header vouches for."""
        if not header:
            raise ApiError(401, "TOKEN_MISSING", "Missing authorization header")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "TOKEN_INVALID", "Invalid token: expected 'Bearer <token>'")
        try:
            claims = jwt.decode(
                token.strip(), self.secret, algorithms=["HS256"], options={"require": ["exp", "sub", "id"]}
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
        return user_id


def current_user(request: Request) -> User:
    """Who is asking: the token's user, or `default` when auth is off."""
    state = request.app.state
    if not state.settings.enable_auth:
        user = state.anonymous
        if user is None:
            user = state.anonymous = state.tracker.get_user(DEFAULT_USERNAME)
        return user
    user_id = state.tokens.user_id(request.headers.get("authorization"))
    user = state.tracker.get_user(user_id)
    if user is None:
        raise ApiError(401, "USER_NOT_FOUND", "User not found")
    return user


def require_admin(user: User) -> None:
    if not user.is_admin:
        raise ApiError(403, "ADMIN_REQUIRED", "Administrator privileges are required")


def require_same_user_or_admin(user: User, user_id: int) -> None:
    if not user.is_admin and user.id != user_id:
        raise ApiError(403, "SAME_USER_REQUIRED", "Only this user or an administrator may do this")
