"""The metric batch's fast path: `POST /metric/iteration/{id}/batch` served without FastAPI's routing.

Under load, py-spy (`--gil`) found the batch's own work (parse, validate, one statement) a small part of
what the worker's interpreter did per request: matching the path against every route (MLflow's and the
dashboard's included), building the request object and resolving the route's dependencies cost more. A
pure ASGI middleware, innermost of ours (inside the back-pressure, database guard, body limit, gzip and
idempotency-key middlewares, which all still apply), recognises the path and hands the parsed body to
the same code the route runs (`routes.data.batch_once`), answering errors as the app's handlers do. A
path it does not recognise as a plain id (leading zeros, beyond 64 bits) goes on to the route, which
answers it as before.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool

from ..tracker.errors import Unprocessable
from .errors import KNOWN_ERRORS, known_error
from .responses import MAX_INT64
from .routes.data import batch_once

_PATH = re.compile(r"/metric/iteration/([1-9][0-9]{0,18})/batch")


async def read_body(receive: Any) -> bytes | None:
    """The whole request body, or None if the client went away (or BodyLimit cut the body off)."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


class FastMetricBatch:
    def __init__(self, app: Any, server: Any) -> None:
        self.app = app
        self.server = server  # the FastAPI app, for its state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        match = _PATH.fullmatch(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if match is None or int(match[1]) > MAX_INT64:
            await self.app(scope, receive, send)
            return
        raw = await read_body(receive)
        if raw is None:
            return
        try:
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise Unprocessable(f"body is not valid JSON: {exc}", field="body") from None
            response = await run_in_threadpool(batch_once, self.server.state, scope, int(match[1]), body)
        except KNOWN_ERRORS as exc:
            response = known_error(exc)
        await response(scope, receive, send)
