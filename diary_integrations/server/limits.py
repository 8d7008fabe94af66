"""A request-size limit enforced while the body is read, and auth checked before a body is read.

A pure ASGI middleware: a `Content-Length` over `DIARY_MAX_REQUEST_BYTES` is answered 413 at once, a
body without one (chunked) is counted as it arrives and cut off with a 413 the moment it passes the
limit, so no request ever holds more than the limit in memory. With auth on, a request that brings a
body (other than a login) must show a valid token first: an anonymous client cannot make the server
read, let alone parse, a large body.
"""

from __future__ import annotations

from typing import Any

import anyio

from .auth import authenticate_early
from .errors import ApiError
from .mlflow import is_mlflow_path
from .mlflow.auth import mlflow_user
from .mlflow.errors import response as mlflow_response
from .mlflow.errors import translated
from .responses import error

# Where a body is sent without a token: the logins.
OPEN_PATHS = frozenset({"/auth", "/ui/login"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def too_large(limit: int) -> Any:
    mib = f" ({limit / 1024 / 1024:g} MiB)" if limit % (1024 * 1024) == 0 else ""
    return error(413, "PAYLOAD_TOO_LARGE",
                 f"request body is larger than the server's limit of {limit} bytes{mib}, DIARY_MAX_REQUEST_BYTES")


class BodyLimit:
    def __init__(self, app: Any, server: Any) -> None:
        self.app = app
        self.server = server  # the FastAPI app, for its settings and tracker

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = self.server.state
        limit = state.settings.max_request_bytes
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = 0  # the server rejects the malformed header itself
            if declared > limit:
                await too_large(limit)(scope, receive, send)
                return
        brings_body = (length not in (None, b"0")) or b"transfer-encoding" in headers
        if (state.settings.enable_auth and brings_body and scope["method"] in _BODY_METHODS
                and scope["path"] not in OPEN_PATHS):
            mlflow = is_mlflow_path(scope["path"])  # MLflow's clients may send basic auth, and read its errors
            try:
                await anyio.to_thread.run_sync(mlflow_user if mlflow else authenticate_early, scope, state)
            except ApiError as exc:
                answer = mlflow_response(translated(exc)) if mlflow else error(exc.http_status, exc.code, exc.message)
                await answer(scope, receive, send)
                return

        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> dict[str, Any]:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the app's answer to a body cut short is replaced by the 413 below
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await too_large(limit)(scope, receive, send)
