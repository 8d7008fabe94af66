"""`Idempotency-Key` on the write routes: a retried write is answered with its first answer, not applied twice.

A pure ASGI middleware reads the header (nothing else of the request); the write routes run their
body through `answered_once`, which records the key and the answer in the same transaction as the
write (tracker/idempotency.py). A request without the header is served as before.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from fastapi import Response

from ..tracker.errors import Unprocessable
from ..tracker.idempotency import HEADER, applied_once, check_key, request_hash
from .responses import FastJSON, error

_HEADER = HEADER.lower().encode()
REPLAYED_HEADER = "Idempotent-Replayed"
# The key of the request being served, and what it is for (method, path and query).
_request_key: ContextVar[tuple[str, str] | None] = ContextVar("diary_request_key", default=None)


class IdempotencyKeys:
    """Puts a write request's `Idempotency-Key` where `answered_once` finds it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        raw = None
        if scope["type"] == "http" and scope["method"] in ("POST", "PATCH", "PUT", "DELETE"):
            raw = next((value for name, value in scope["headers"] if name == _HEADER), None)
        if raw is None:
            await self.app(scope, receive, send)
            return
        try:
            key = check_key(raw.decode("latin-1"), HEADER)
        except Unprocessable as exc:
            await error(422, exc.code, exc.message, field=HEADER)(scope, receive, send)
            return
        purpose = request_hash(scope["method"], scope["path"], scope.get("query_string", b"").decode("latin-1"))
        token = _request_key.set((key, purpose))
        try:
            await self.app(scope, receive, send)
        finally:
            _request_key.reset(token)


def request_key() -> tuple[str, str] | None:
    """The `(key, purpose)` of the write being served, if it was sent with an Idempotency-Key."""
    return _request_key.get()


def replayed(status: int, body: str) -> Response:
    """A stored answer sent again."""
    return Response(body.encode(), status, media_type="application/json", headers={REPLAYED_HEADER: "true"})


def answered_once(tracker: Any, user: Any, answer: Callable[[], Any]) -> Response:
    """`answer()` as a response, applied once per key: a repeat gets the stored status and body back."""
    keyed = _request_key.get()
    if keyed is None or not hasattr(tracker, "engine"):
        return _response(answer())
    key, purpose = keyed
    with applied_once(tracker.engine, key, purpose, getattr(user, "id", None)) as slot:
        if slot.replay is not None:
            return replayed(*slot.replay)
        response = _response(answer())
        slot.store(response.status_code, bytes(response.body).decode())
        return response


def idempotent(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """A sync write route (with `tracker` and `me` parameters) whose key, if sent, is applied once."""

    @functools.wraps(endpoint)
    def route(*args: Any, **kwargs: Any) -> Response:
        return answered_once(kwargs["tracker"], kwargs.get("me"), lambda: endpoint(*args, **kwargs))

    return route


def _response(result: Any) -> Response:
    return result if isinstance(result, Response) else FastJSON(result)
