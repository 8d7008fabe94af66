"""MLflow's error shape: `{"error_code": "...", "message": "..."}` with the HTTP status MLflow gives the code.

Every failure under the MLflow prefixes leaves in this shape (the MLflow client reads `error_code`), and
bad input is a 4xx however it shows up: diary's own errors are translated code by code, and a database
refusing a value is INVALID_PARAMETER_VALUE. A 500 (INTERNAL_ERROR) means a bug, logged with its details.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import DataError

from ...tracker.errors import Conflict, DiaryError, NotFound, Unprocessable
from ..availability import is_unavailable, retry_after
from ..errors import ApiError
from ..responses import FastJSON

log = logging.getLogger("diary_integrations.server.mlflow")

# MLflow's codes and the statuses its server answers them with (mlflow/protos/databricks.proto).
STATUS = {
    "INVALID_PARAMETER_VALUE": 400,
    "BAD_REQUEST": 400,
    "MALFORMED_REQUEST": 400,
    "INVALID_STATE": 400,
    "RESOURCE_ALREADY_EXISTS": 400,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "ENDPOINT_NOT_FOUND": 404,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "REQUEST_LIMIT_EXCEEDED": 429,
    "INTERNAL_ERROR": 500,
    "TEMPORARILY_UNAVAILABLE": 503,
}


class MlflowError(Exception):
    def __init__(self, code: str, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return STATUS.get(self.code, 400)


def invalid(message: str) -> MlflowError:
    return MlflowError("INVALID_PARAMETER_VALUE", message)


def missing(what: str) -> MlflowError:
    return MlflowError("RESOURCE_DOES_NOT_EXIST", what)


def translated(exc: BaseException) -> MlflowError:
    """The MLflow error for anything a handler raised."""
    if isinstance(exc, MlflowError):
        return exc
    if isinstance(exc, ApiError):
        code = {
            401: "UNAUTHENTICATED",
            403: "PERMISSION_DENIED",
            404: "RESOURCE_DOES_NOT_EXIST",
            429: "REQUEST_LIMIT_EXCEEDED",
        }.get(exc.http_status, "INVALID_PARAMETER_VALUE")
        return MlflowError(code, exc.message, headers=exc.headers)
    if isinstance(exc, Conflict):
        return MlflowError(
            "RESOURCE_ALREADY_EXISTS" if "already" in exc.message else "INVALID_PARAMETER_VALUE", exc.message
        )
    if isinstance(exc, NotFound):
        return missing(exc.message)
    if isinstance(exc, Unprocessable):
        return invalid(exc.message)
    if isinstance(exc, DiaryError):
        return MlflowError("INVALID_PARAMETER_VALUE" if exc.http_status < 500 else "INTERNAL_ERROR", exc.message)
    if isinstance(exc, DataError):
        return invalid(f"a value is out of range for the database: {exc.orig}")
    if isinstance(exc, (OverflowError, UnicodeError, RecursionError)):
        return invalid(f"a value cannot be stored: {type(exc).__name__}")
    if is_unavailable(exc):  # the database is away: try again later, not a bug
        return MlflowError("TEMPORARILY_UNAVAILABLE", "the database is not reachable now; retry later",
                           headers=retry_after(1))
    # Details (which may name paths on the server) go to the log only.
    log.exception("diary server: unexpected error in an MLflow route", exc_info=exc)
    return MlflowError("INTERNAL_ERROR", f"internal server error ({type(exc).__name__}); the server log has details")


def response(exc: MlflowError) -> FastJSON:
    return FastJSON({"error_code": exc.code, "message": exc.message}, status_code=exc.status, headers=exc.headers)
