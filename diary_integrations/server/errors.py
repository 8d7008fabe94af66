"""Every failure leaves the server as the envelope `{"code", "message"}` with the status docs/design.md gives.

Bad input is a 422 however it shows up (a broken rule, malformed JSON, a number out of range for the
database); a 500 means a bug in the server, never something a client sent.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException

from ..tracker.errors import DiaryError, IterationEnded
from .responses import FastJSON, error

log = logging.getLogger("diary_integrations.server")


class ApiError(DiaryError):
    """An error with its own REST code (TOKEN_EXPIRED, ADMIN_REQUIRED, ...)."""

    def __init__(self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.http_status = status
        self.code = code
        self.headers = headers or {}


def _location(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or "body"


def _validation_message(exc: RequestValidationError) -> str:
    problems = []
    for item in exc.errors()[:5]:
        if item.get("type") == "json_invalid":
            problems.append(f"body is not valid JSON: {item.get('ctx', {}).get('error', item.get('msg'))}")
        else:
            problems.append(f"{_location(tuple(item.get('loc', ())))}: {item.get('msg')}")
    return "; ".join(problems) or "invalid request"


# What the handlers below turn into a 4xx (the write fast path, fast_batch.py, answers them the same way).
KNOWN_ERRORS = (DiaryError, DataError, OverflowError, UnicodeError)


def diary_error(exc: DiaryError) -> FastJSON:
    """The envelope of a broken rule (its status, code, message and field)."""
    if isinstance(exc, IterationEnded):
        # Which iterations ended (id -> status), so the client stops beating exactly those.
        body = {"code": exc.code, "message": exc.message, "ended": {str(k): v for k, v in exc.ended.items()}}
        return FastJSON(body, status_code=exc.http_status)
    response = error(exc.http_status, exc.code, exc.message, field=exc.field)
    response.headers.update(getattr(exc, "headers", None) or {})
    return response


def bad_value(exc: Exception) -> FastJSON:
    """The 422 for a value the checks let through and the database or Python could not take."""
    if isinstance(exc, DataError):
        # The database refused a value the checks let through (an id beyond a 32-bit column, ...).
        return error(422, "INVALID_PAYLOAD", f"a value is out of range for the database: {exc.orig}")
    if isinstance(exc, UnicodeError):
        return error(422, "INVALID_PAYLOAD", f"text cannot be stored: {getattr(exc, 'reason', exc)}")
    return error(422, "INVALID_PAYLOAD", f"a number is out of range: {exc}")


def known_error(exc: Exception) -> FastJSON:
    """The answer to one of KNOWN_ERRORS."""
    return diary_error(exc) if isinstance(exc, DiaryError) else bad_value(exc)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DiaryError)
    async def _diary(_request: Request, exc: DiaryError) -> FastJSON:
        return diary_error(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> FastJSON:
        # The field is named, as a DiaryError names it: an unknown body field (models refuse extras:
        # bodies.py), else the first field that failed (its top-level name: `value`, not `value.float`,
        # the union member pydantic tried).
        errors = exc.errors()
        unknown = [_location(tuple(e.get("loc", ()))) for e in errors if e.get("type") == "extra_forbidden"]
        fields = [_location(tuple(e.get("loc", ()))).split(".")[0] for e in errors if e.get("type") != "json_invalid"]
        field = unknown[0] if unknown else next((f for f in fields if f != "body"), None)
        return error(422, "INVALID_PAYLOAD", _validation_message(exc), field=field)

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> FastJSON:
        codes = {400: "INVALID_PAYLOAD", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}
        status = 422 if exc.status_code == 400 else exc.status_code
        response = error(status, codes.get(exc.status_code, "HTTP_ERROR"), str(exc.detail))
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(DataError)
    async def _data(_request: Request, exc: DataError) -> FastJSON:
        return bad_value(exc)

    @app.exception_handler(OverflowError)
    async def _overflow(_request: Request, exc: OverflowError) -> FastJSON:
        return bad_value(exc)

    @app.exception_handler(UnicodeError)
    async def _unicode(_request: Request, exc: UnicodeError) -> FastJSON:
        return bad_value(exc)

    @app.exception_handler(Exception)
    async def _bug(_request: Request, exc: Exception) -> FastJSON:
        # The details (which may name files and paths on the server) go to the log, not to the client.
        log.exception("diary server: unexpected error")
        return error(500, "SERVER_ERROR", f"internal server error ({type(exc).__name__}); the server log has details")
