"""The error tree: each DearDiary result code that is a failure becomes an exception type."""

from __future__ import annotations

# An iteration's error message is cut to this many characters (the traceback is kept whole elsewhere).
MAX_ERROR_MESSAGE = 2000


def one_line(exc: BaseException) -> str:
    """`"MemoryError: max_depth=12 blew the heap"`: the exception's type and the first line of its text."""
    text = str(exc).strip()
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    message = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return message[:MAX_ERROR_MESSAGE]


class DiaryError(Exception):
    """Base of every error the tracker raises on purpose. `code` is the REST error code."""

    code = "ERROR"
    http_status = 500

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class Unprocessable(DiaryError, ValueError):
    """A rule was broken (unknown id, wrong type, locked iteration...); nothing was written."""

    code = "INVALID_PAYLOAD"
    http_status = 422


class Conflict(DiaryError):
    """The write would duplicate a unique value (a username, a parameter key...)."""

    code = "CONFLICT"
    http_status = 409


class NotFound(DiaryError, LookupError):
    """A route or delete named an entity that does not exist (get_* return None instead)."""

    code = "NOT_FOUND"
    http_status = 404


class AuthError(DiaryError):
    """Missing, invalid or expired credentials."""

    code = "UNAUTHORIZED"
    http_status = 401


class PermissionDenied(DiaryError):
    """Authenticated, but not allowed to do this."""

    code = "FORBIDDEN"
    http_status = 403


class TransportError(DiaryError):
    """The tracking server could not be reached or answered something unexpected. For a write, `request`
    is what was sent (a `client.PendingWrite` with its idempotency key), so it can be sent again later
    without being applied twice."""

    code = "TRANSPORT_ERROR"
    http_status = 502

    def __init__(self, message: str, *, field: str | None = None, request: object = None) -> None:
        super().__init__(message, field=field)
        self.request = request


class IterationEnded(Conflict):
    """A heartbeat for an iteration that has already ended (a reaper marked it KILLED while its process
    still ran, or another writer ended it). `ended` maps each such iteration id to its status name; the
    live iterations of the same call were beaten all the same."""

    code = "ITERATION_ENDED"
    http_status = 409

    def __init__(self, message: str, *, field: str | None = None, ended: dict[int, str] | None = None) -> None:
        super().__init__(message, field=field)
        self.ended = dict(ended or {})


class SchemaTooNew(DiaryError):
    """The database was migrated by a newer diary-integrations than this one; nothing was written to it."""

    code = "SCHEMA_TOO_NEW"
    http_status = 503
