"""RemoteTracker: the Tracker API over REST, against `diary server`.

Same methods, return types and errors as LocalTracker: a 422 raises `Unprocessable`, a 409 `Conflict`,
a 401 `AuthError`, a 403 `PermissionDenied`; `get_*` of a missing entity returns None. Connections are
pooled; list calls walk the server's pages; a tracker pickles to its URL and credentials and
reconnects lazily in the new process.
"""

from __future__ import annotations

import dataclasses
import os
import random
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import orjson

from .tracker.enums import IterationStatus, Result, TagTarget
from .tracker.environment import capture_environment
from .tracker.errors import (
    AuthError,
    Conflict,
    DiaryError,
    IterationEnded,
    NotFound,
    PermissionDenied,
    TransportError,
    Unprocessable,
)
from .tracker.idempotency import HEADER as IDEMPOTENCY_HEADER
from .tracker.idempotency import current_key, new_key, using_key
from .tracker.lifecycle import IterationRun
from .tracker.records import (
    Created,
    Environment,
    Experiment,
    Iteration,
    IterationEnding,
    Metric,
    NewIteration,
    Parameter,
    Project,
    Resource,
    Tag,
    User,
    UserPermission,
    decode_float,
    encode_float,
    from_dict,
)
from .tracker.validation import (
    batch_item,
    check_datetime,
    check_enum,
    check_id,
    check_iteration_name,
    check_key,
    check_max_points,
    check_metric_value,
    check_name,
    check_page,
    check_step,
    check_text,
    checked_batch,
    checked_new_iteration,
    checked_parameters,
    checked_points,
    format_parameter_value,
    listed_points,
    resource_bytes,
)

R = TypeVar("R")
_UNSET: Any = object()
_ERRORS: dict[int, type[DiaryError]] = {
    401: AuthError, 403: PermissionDenied, 404: NotFound, 409: Conflict, 422: Unprocessable,
}
# Methods whose repetition cannot write twice; only these (and writes sent with an idempotency key) are
# retried once a request may have left.
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"})
# Answers that mean "the server is restarting or a proxy lost it", worth a retry when a repeat is safe.
_RETRY_STATUSES = frozenset({502, 503, 504})
PAGE_SIZE = 1000
METRIC_PAGE_SIZE = 10_000
# The server's limits on batched reads (server/routes/data.py): at most this many iteration ids per
# request, and for `/metric/series` at most this many points asked for (ids x max_points). Longer lists
# are sent in chunks.
MAX_BATCH_IDS = 1000
MAX_SERIES_BUDGET = 1_000_000
# A server refuses bodies over its DIARY_MAX_REQUEST_BYTES (at least 1 MiB, 32 MiB by default; /health
# says which). Batch writes larger than this are cut into parts that fit, so none is ever refused; a body
# of at most this size needs no look-up.
SMALL_BODY_BYTES = 1024 * 1024
_MAX_ID = 2**63 - 1


def _seg(value: Any) -> str:
    """A path segment, escaped so a name can never reach another route."""
    return quote(str(value), safe="")


def _id_path(template: str, value: Any, field: str) -> str | None:
    """`template` with the checked id in it, or None for an id past 2^63-1: no row can have one and the
    server refuses such a path as malformed, so reads answer "missing" without asking."""
    id_ = check_id(value, field)
    return None if id_ > _MAX_ID else template.format(id_)


def _batched_ids(iteration_ids: Sequence[int], size: int = MAX_BATCH_IDS) -> tuple[list[int], list[list[int]]]:
    """The checked ids, and the chunks of those the server can look up (ids past 2^63-1 name nothing)."""
    ids = [check_id(i, "iteration_ids") for i in iteration_ids]
    stored = list(dict.fromkeys(i for i in ids if i <= _MAX_ID))
    return ids, [stored[n : n + size] for n in range(0, len(stored), size)]


def _when(value: Any, field: str) -> Any:
    """A date for JSON: ISO text keeps microseconds exactly; epoch seconds stay numbers."""
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    return check_datetime(value, field).isoformat()


def _point_rows(points: Iterable[Sequence[Any]]) -> list[list[Any]]:
    """Checked `(key, value, step[, recorded_at])` points as JSON rows; NaN and infinities travel as text."""
    rows: list[list[Any]] = []
    for key, value, step, when in checked_points(points):
        if value - value != 0.0:
            value = encode_float(value)
        rows.append([key, value, step] if when is None else [key, value, step, _when(when, "recorded_at")])
    return rows


def _ending_body(ending: IterationEnding) -> dict[str, Any]:
    """An ending as the JSON the server takes, its parameters and points checked here first."""
    body: dict[str, Any] = {"iteration_id": check_id(ending.iteration_id, "iteration_id"),
                            "status_id": _enum_value(ending.status), "error_message": ending.error_message,
                            "traceback": ending.traceback}
    if ending.parameters is not None:
        body["parameters"] = checked_parameters(ending.parameters)
    if ending.points is not None:
        body["points"] = _point_rows(ending.points)
    if ending.notes is not None:
        body["notes"] = ending.notes
    return body


@dataclasses.dataclass(frozen=True)
class PendingWrite:
    """A write as it was sent: replaying it with the same idempotency key applies it at most once."""

    method: str
    path: str
    params: dict[str, Any] | None
    body: Any
    idempotency_key: str


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _metric(row: dict[str, Any]) -> Metric:
    """A metric row without the generic decoder: reading a long series back is all this, many times."""
    value = row["value"]
    return Metric(
        row["id"], row["iteration_id"], row["key"], value if type(value) is float else decode_float(value),
        row["step"], datetime.fromisoformat(row["recorded_at"]),
    )


_DECODERS: dict[type, Any] = {Metric: _metric}


class RemoteTracker:
    """The tracker behind a tracking server (`http://host:9000`).

    With `username`/`password` it logs in on first use (and again when the token expires); with `token`
    it sends that bearer token; with neither it talks to a server whose auth is off.
    """

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout: float = 60.0,
        retries: int = 4,
        replay_journal: bool = True,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise Unprocessable(f"url must start with http:// or https://, got {url!r}", field="url")
        self.url = url.rstrip("/")
        self.username = username
        self.password = password
        self.token = token
        self.timeout = timeout
        self.retries = retries
        # Journals of this server left by earlier processes are replayed in the background on first use.
        self.replay_journal = replay_journal
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._login_lock = threading.Lock()  # one login at a time, while other threads keep the pool
        self._body_budget: int | None = None

    # -- connection -------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"RemoteTracker({self.url!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {
            "url": self.url, "username": self.username, "password": self.password, "token": self.token,
            "timeout": self.timeout, "retries": self.retries, "replay_journal": self.replay_journal,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["url"], username=state["username"], password=state["password"], token=state["token"],
            timeout=state["timeout"], retries=state["retries"], replay_journal=state.get("replay_journal", True),
        )

    def __enter__(self) -> RemoteTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _http(self) -> httpx.Client:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = httpx.Client(
                        base_url=self.url,
                        timeout=self.timeout,
                        # Idle connections are dropped before the server's keep-alive (75 s) ends them.
                        limits=httpx.Limits(max_connections=64, max_keepalive_connections=32, keepalive_expiry=30),
                        headers={"accept": "application/json"},
                    )
                    started = True
                else:
                    started = False
            if started and self.replay_journal:
                from .journal import replay_in_background

                replay_in_background(self)
        return self._client

    def _send(
        self, method: str, path: str, *, keyed: bool = False, retries: int | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One request with retries: a refused connection is retried for every method (nothing was
        sent), any other transport failure (or a 502/503/504) only where a repeat cannot write twice:
        idempotent methods, and writes carrying an idempotency key."""
        client = self._http()
        repeatable = keyed or method in _IDEMPOTENT
        retries = self.retries if retries is None else retries
        delay = 0.1
        for attempt in range(retries + 1):
            try:
                response = client.request(method, path, **kwargs)
                if not (repeatable and response.status_code in _RETRY_STATUSES and attempt < retries):
                    return response
                failure: Exception = TransportError(f"HTTP {response.status_code}")
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                failure = exc
            except httpx.TransportError as exc:
                if not repeatable:
                    raise TransportError(f"{method} {path} failed: {type(exc).__name__}: {exc}") from exc
                failure = exc
            if attempt < retries:
                time.sleep(delay * (1 + random.random() / 2))
                delay = min(delay * 2, 3.0)
        raise TransportError(
            f"{method} {self.url}{path} failed after {retries + 1} attempts: "
            f"{type(failure).__name__}: {failure}"
        ) from failure

    def _auth_header(self, renew: bool = False) -> dict[str, str]:
        if (self.token is None or renew) and self.username is not None and self.password is not None:
            with self._login_lock:
                if self.token is None or renew:
                    self.token = self._login(self.username, self.password)["access_token"]
        return {"authorization": f"Bearer {self.token}"} if self.token else {}

    def _login(self, username: str, password: str) -> dict[str, Any]:
        response = self._send("POST", "/auth", content=orjson.dumps({"username": username, "password": password}),
                              headers={"content-type": "application/json"})
        if response.status_code != 200:
            self._raise(response)
        return response.json()

    def _call(
        self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None,
        missing: Any = _UNSET, retries: int | None = None, **kwargs: Any,
    ) -> Any:
        """Send, map errors to the tracker's exceptions, and return the decoded JSON (or `missing` on 404).
        A JSON write carries an idempotency key (the one `using_key` gives, else a new one), so its
        retries, and a journal's replay of it, are applied once."""
        headers = dict(kwargs.pop("headers", {}))
        key = None
        if body is not None:
            kwargs["content"] = orjson.dumps(body)
            headers["content-type"] = "application/json"
            if method != "GET":
                key = current_key() or new_key()
                headers[IDEMPOTENCY_HEADER] = key
        if params:
            params = {k: v for k, v in params.items() if v is not None}
        try:
            for attempt in range(2):
                response = self._send(method, path, keyed=key is not None, params=params, retries=retries,
                                      headers={**headers, **self._auth_header(attempt > 0)}, **kwargs)
                # An expired or revoked token (logout-all elsewhere) is renewed with the password, if held.
                expired = response.status_code == 401 and self._code(response) in ("TOKEN_EXPIRED", "TOKEN_REVOKED")
                if not (expired and self.password is not None and attempt == 0):
                    break
            if response.status_code == 404 and missing is not _UNSET:
                return missing
            if response.status_code >= 400:
                self._raise(response)
        except TransportError as exc:
            if key is not None:
                exc.request = PendingWrite(method, path, params or None, body, key)
            raise
        if response.headers.get("content-type", "").startswith("application/json"):
            return orjson.loads(response.content)
        return response.content

    def body_budget(self) -> int:
        """The most JSON bytes one request of this client carries: the server's limit, less a margin."""
        if self._body_budget is None:
            limit = 32 * 1024 * 1024
            try:
                answer = self._send("GET", "/health")
                if answer.status_code == 200:
                    limit = int(answer.json().get("max_request_bytes", limit))
            except (TransportError, ValueError):
                pass
            self._body_budget = max(SMALL_BODY_BYTES, limit - 64 * 1024)
        return self._body_budget

    def _call_in_parts(
        self, method: str, path: str, field: str, items: list[Any], *, extra: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> list[Any]:
        """A batch write as one request if it fits the server's body limit, else as several requests of
        consecutive items, each within it (each part is then its own transaction). A key given with
        `using_key` becomes `<key>.<part>` per part, so a replay repeats every part once."""
        extra = extra or {}
        body = {**extra, field: items}
        encoded = len(orjson.dumps(body))
        if encoded <= SMALL_BODY_BYTES or encoded <= self.body_budget():
            return [self._call(method, path, body=body, params=params)]
        budget = self.body_budget() - len(orjson.dumps({**extra, field: []}))
        parts: list[list[Any]] = [[]]
        size = 0
        for item in items:
            n = len(orjson.dumps(item)) + 1
            if parts[-1] and size + n > budget:
                parts.append([])
                size = 0
            parts[-1].append(item)
            size += n
        given = current_key()
        answers = []
        for number, part in enumerate(parts):
            if given is None:
                answers.append(self._call(method, path, body={**extra, field: part}, params=params))
                continue
            with using_key(f"{given[:90]}.{number}"):
                answers.append(self._call(method, path, body={**extra, field: part}, params=params))
        return answers

    def replay(self, write: PendingWrite, *, retries: int | None = None, timeout: float | None = None) -> Any:
        """Send a write again exactly as it first went (same idempotency key): the server applies it
        once, however many times it arrives. `retries` and `timeout` override the tracker's for this
        send (a journal's quick probe of a server that was gone)."""
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        with using_key(write.idempotency_key):
            return self._call(write.method, write.path, body=write.body, params=write.params, retries=retries,
                              **extra)

    # -- the journal of writes the server could not take (journal.py) ----------------------------

    def metric_points_write(self, iteration_id: int, points: Iterable[Sequence[Any]]) -> PendingWrite | None:
        """The request `log_metric_points` would send, with its idempotency key, not sent yet: a
        MetricWriter sends it with `replay` and can journal it while it is still in flight. None for no
        points; bad points raise here, as `log_metric_points` would."""
        iteration_id = check_id(iteration_id, "iteration_id")
        rows = _point_rows(points)
        if not rows:
            return None
        return PendingWrite("POST", f"/metric/iteration/{iteration_id}/batch", None, {"points": rows},
                            current_key() or new_key())

    def _write_or_journal(self, iteration_id: int, kind: str, count: int, path: str, body: Any) -> Any:
        """A write of a run's data or end that must not be lost: sent now, unless this run already has
        writes waiting in the local journal (then it goes after them, and the journal is replayed at
        once if the server answers); journaled when the server cannot be reached. A journaled write
        raises TransportError with `journal` (the file) set."""
        from . import journal

        write = PendingWrite("POST", path, None, body, current_key() or new_key())
        entry = journal.Entry(write, kind, count)
        if journal.has_pending(self.url, iteration_id):
            file = journal.append(self.url, iteration_id, [entry])
            report = journal.replay_file(self, file, retries=0 if journal.in_outage(self.url) else None)
            if write.idempotency_key in report.answers:
                return report.answers[write.idempotency_key]
            error = TransportError(
                f"{write.method} {self.url}{path}: kept in the journal {file} behind earlier writes of "
                f"iteration {iteration_id} ({'; '.join(report.errors) or 'being replayed elsewhere'})",
                request=write,
            )
            error.journal = file  # type: ignore[attr-defined]
            if journal.has_pending(self.url, iteration_id) or not report.rejected:
                raise error
            raise Unprocessable(f"{kind} of iteration {iteration_id} refused: {'; '.join(report.errors)}")
        try:
            return self.replay(write)
        except TransportError as exc:
            exc.request = write
            exc.journal = journal.append(self.url, iteration_id, [entry])  # type: ignore[attr-defined]
            raise

    @staticmethod
    def _code(response: httpx.Response) -> str:
        try:
            return str(response.json().get("code", ""))
        except Exception:
            return ""

    def _raise(self, response: httpx.Response) -> None:
        try:
            payload = response.json()
            code, message, field = payload.get("code", "UNKNOWN"), payload.get("message", ""), payload.get("field")
        except Exception:
            code, message, field = "UNKNOWN", f"HTTP {response.status_code}: {response.text[:500]}", None
        if code == IterationEnded.code:
            ended = payload.get("ended") or {}
            raise IterationEnded(message, field=field, ended={int(k): str(v) for k, v in ended.items()})
        cls = _ERRORS.get(response.status_code)
        if cls is None:
            raise TransportError(f"{response.request.method} {response.request.url}: HTTP {response.status_code} "
                                 f"{code}: {message}")
        error = cls(message, field=field)
        error.code = code  # the server's precise code (TOKEN_EXPIRED, ADMIN_REQUIRED, ...)
        raise error

    def _one(self, cls: type[R], path: str | None, **params: Any) -> R | None:
        if path is None:
            return None
        data = self._call("GET", path, params=params or None, missing=None)
        return None if data is None else from_dict(cls, data)

    def _list(
        self, cls: type[R], path: str | None, limit: int | None, offset: int, *, page_size: int = PAGE_SIZE,
        **params: Any,
    ) -> list[R]:
        """Every row (walking the pages) or the `limit` rows from `offset`, as LocalTracker returns them."""
        limit, offset = check_page(limit, offset)
        if path is None:
            return []
        out: list[R] = []
        while limit is None or len(out) < limit:
            want = page_size if limit is None else min(page_size, limit - len(out))
            page = self._call("GET", path, params={**params, "limit": want, "offset": offset + len(out)})
            rows = page["data"]
            decode = _DECODERS.get(cls) or (lambda row: from_dict(cls, row))
            out.extend(decode(row) for row in rows)
            if not rows or offset + len(out) >= page["total"]:
                break
        return out

    def _created(self, data: Any, name: str) -> Created:
        return Created(int(data[f"{name}_id"]), Result.CREATED)

    def _deleted(self, path: str | None) -> bool:
        if path is None:
            return False
        return self._call("DELETE", path, missing=False) is not False

    def whoami(self) -> User:
        """The user this tracker acts as (`default` when the server's auth is off)."""
        return from_dict(User, self._call("GET", "/auth/me"))

    # -- users ------------------------------------------------------------------------------------

    def get_user(self, user: int | str) -> User | None:
        """By id, or by username when given a string."""
        if isinstance(user, str):
            return self._one(User, "/user/by-name", username=user)
        return self._one(User, _id_path("/user/{}", user, "user_id"))

    def get_users(self, *, limit: int | None = None, offset: int = 0) -> list[User]:
        return self._list(User, "/user/", limit, offset)

    def create_user(
        self, username: str, password: str, *, first_name: str = "", last_name: str = "", is_admin: bool = False
    ) -> Created:
        body = {"username": username, "password": password, "first_name": first_name, "last_name": last_name,
                "is_admin": is_admin}
        return self._created(self._call("POST", "/user/", body=body), "user")

    def update_user(
        self, user_id: int, *, first_name: str | None = None, last_name: str | None = None,
        password: str | None = None, is_admin: bool | None = None,
    ) -> Result:
        body = {"first_name": first_name, "last_name": last_name, "password": password, "is_admin": is_admin}
        body = {k: v for k, v in body.items() if v is not None}
        self._call("PATCH", f"/user/{check_id(user_id, 'user_id')}", body=body)
        return Result.UPDATED

    def delete_user(self, user_id: int) -> bool:
        return self._deleted(_id_path("/user/{}", user_id, "user_id"))

    def authenticate(self, username: str, password: str) -> User | None:
        """The user whose password this is, or None."""
        if not isinstance(username, str) or not isinstance(password, str):
            return None
        try:
            return from_dict(User, self._login(username, password)["user"])
        except (AuthError, NotFound):
            return None

    # -- permissions ------------------------------------------------------------------------------

    def create_user_permission(
        self, user_id: int, project_id: int, *, create: bool = False, read: bool = True, update: bool = False,
        delete: bool = False,
    ) -> Created:
        body = {"create_permission": create, "read_permission": read, "update_permission": update,
                "delete_permission": delete}
        path = f"/userpermission/user/{check_id(user_id, 'user_id')}/project/{check_id(project_id, 'project_id')}"
        return self._created(self._call("POST", path, body=body), "userpermission")

    def get_user_permission(self, user_id: int, project_id: int) -> UserPermission | None:
        user_path = _id_path("/userpermission/user/{}", user_id, "user_id")
        project_path = _id_path("/project/{}", project_id, "project_id")
        if user_path is None or project_path is None:
            return None
        return self._one(UserPermission, user_path + project_path)

    def get_user_permissions(
        self, *, user_id: int | None = None, project_id: int | None = None, limit: int | None = None,
        offset: int = 0,
    ) -> list[UserPermission]:
        params = {"user_id": None if user_id is None else check_id(user_id, "user_id"),
                  "project_id": None if project_id is None else check_id(project_id, "project_id")}
        return self._list(UserPermission, "/userpermission/", limit, offset, **params)

    def update_user_permission(
        self, permission_id: int, *, create: bool | None = None, read: bool | None = None,
        update: bool | None = None, delete: bool | None = None,
    ) -> Result:
        flags = {"create": create, "read": read, "update": update, "delete": delete}
        body = {f"{k}_permission": v for k, v in flags.items() if v is not None}
        self._call("PATCH", f"/userpermission/{check_id(permission_id, 'permission_id')}", body=body)
        return Result.UPDATED

    def delete_user_permission(self, permission_id: int) -> bool:
        return self._deleted(_id_path("/userpermission/{}", permission_id, "permission_id"))

    # -- projects ---------------------------------------------------------------------------------

    def create_project(self, name: str, *, description: str = "", user_id: int | None = None) -> Created:
        """A project, owned by `user_id` (default: the caller), who gets every permission on it."""
        body = {"name": name, "description": description}
        if user_id is not None:
            body["user_id"] = check_id(user_id, "user_id")
        return self._created(self._call("POST", "/project/", body=body), "project")

    def get_project(self, project_id: int) -> Project | None:
        return self._one(Project, _id_path("/project/{}", project_id, "project_id"))

    def get_projects(self, *, user_id: int | None = None, limit: int | None = None, offset: int = 0) -> list[Project]:
        """Every project, or with `user_id` the ones that user may read (an admin reads all)."""
        uid = None if user_id is None else check_id(user_id, "user_id")
        return self._list(Project, "/project/", limit, offset, user_id=uid)

    def get_project_by_name(self, name: str) -> Project | None:
        return self._one(Project, "/project/by-name", name=check_name(name))

    def update_project(self, project_id: int, *, name: str | None = None, description: str | None = None) -> Result:
        body = {k: v for k, v in {"name": name, "description": description}.items() if v is not None}
        self._call("PATCH", f"/project/{check_id(project_id, 'project_id')}", body=body)
        return Result.UPDATED

    def delete_project(self, project_id: int) -> bool:
        """Deletes the project with its experiments, iterations and resources (files included)."""
        return self._deleted(_id_path("/project/{}", project_id, "project_id"))

    # -- experiments ------------------------------------------------------------------------------

    def create_experiment(self, project_id: int, status: Any, name: str, *, description: str = "") -> Created:
        body = {"status_id": _enum_value(status), "name": name, "description": description}
        path = f"/experiment/project/{check_id(project_id, 'project_id')}"
        return self._created(self._call("POST", path, body=body), "experiment")

    def get_experiment(self, experiment_id: int) -> Experiment | None:
        return self._one(Experiment, _id_path("/experiment/{}", experiment_id, "experiment_id"))

    def get_experiments(self, project_id: int, *, limit: int | None = None, offset: int = 0) -> list[Experiment]:
        return self._list(Experiment, _id_path("/experiment/project/{}", project_id, "project_id"), limit, offset)

    def get_experiment_by_name(self, project_id: int, name: str) -> Experiment | None:
        path = _id_path("/experiment/project/{}/by-name", project_id, "project_id")
        return self._one(Experiment, path, name=check_name(name))

    def update_experiment(
        self, experiment_id: int, *, status: Any = None, name: str | None = None, description: str | None = None,
        end_date: datetime | None = _UNSET,
    ) -> Result:
        """Moving to STOPPED or FINISHED stamps `end_date` (unless given); back to IN_PROGRESS clears it."""
        body: dict[str, Any] = {"status_id": _enum_value(status), "name": name, "description": description}
        body = {k: v for k, v in body.items() if v is not None}
        if end_date is not _UNSET:
            body["end_date"] = _when(end_date, "end_date")
        self._call("PATCH", f"/experiment/{check_id(experiment_id, 'experiment_id')}", body=body)
        return Result.UPDATED

    def delete_experiment(self, experiment_id: int) -> bool:
        return self._deleted(_id_path("/experiment/{}", experiment_id, "experiment_id"))

    # -- iterations -------------------------------------------------------------------------------

    def create_iteration(
        self, experiment_id: int, *, parent_iteration_id: int | None = None, notes: str = "",
        snapshot: bool | None = None, parameters: Mapping[str, Any] | None = None, name: str = "",
    ) -> Created:
        """A RUNNING iteration, with `parameters` set in the same transaction. The environment snapshot
        (default: top-level iterations only) is taken here, in the process that runs the code, and sent."""
        experiment_id = check_id(experiment_id, "experiment_id")
        params = {"parent_iteration_id": None if parent_iteration_id is None
                  else check_id(parent_iteration_id, "parent_iteration_id")}
        if snapshot is None:
            snapshot = parent_iteration_id is None
        body: dict[str, Any] = {"notes": notes}
        if name:
            body["name"] = check_iteration_name(name)
        if parameters is not None:
            body["parameters"] = checked_parameters(parameters)
        if snapshot is True:
            body["environment"] = dataclasses.asdict(capture_environment())
        elif snapshot is not False:
            raise Unprocessable(f"snapshot must be true or false, got {snapshot!r}", field="snapshot")
        data = self._call("POST", f"/iteration/experiment/{experiment_id}", body=body, params=params)
        return self._created(data, "iteration")

    def create_iterations(
        self, experiment_id: int, iterations: Sequence[NewIteration], *, parent_iteration_id: int | None = None
    ) -> list[int]:
        """Several RUNNING iterations (each with its notes and parameters) in one request and one
        transaction, all or nothing. No environment snapshots. Their ids, in order."""
        experiment_id = check_id(experiment_id, "experiment_id")
        params = {"parent_iteration_id": None if parent_iteration_id is None
                  else check_id(parent_iteration_id, "parent_iteration_id")}
        body = []
        for n, item in enumerate(checked_batch(iterations, "iterations", NewIteration)):
            with batch_item("iterations", n):
                notes, parameters = checked_new_iteration(item)
                body.append({"notes": notes, "parameters": parameters, "name": check_iteration_name(item.name)})
        answers = self._call_in_parts("POST", f"/iteration/experiment/{experiment_id}/batch", "iterations", body,
                                      params=params)
        return [int(i) for data in answers for i in data["iteration_ids"]]

    def get_iteration(self, iteration_id: int) -> Iteration | None:
        return self._one(Iteration, _id_path("/iteration/{}", iteration_id, "iteration_id"))

    def get_iterations(
        self, experiment_id: int, *, status: Any = None, limit: int | None = None, offset: int = 0
    ) -> list[Iteration]:
        path = _id_path("/iteration/experiment/{}", experiment_id, "experiment_id")
        return self._list(Iteration, path, limit, offset, status=_enum_value(status))

    def get_child_iterations(self, iteration_id: int, *, limit: int | None = None, offset: int = 0) -> list[Iteration]:
        """The direct children of an iteration, ordered by id."""
        return self._list(Iteration, _id_path("/iteration/{}/children", iteration_id, "iteration_id"), limit, offset)

    def get_environment(self, iteration_id: int) -> Environment | None:
        return self._one(Environment, _id_path("/iteration/{}/environment", iteration_id, "iteration_id"))

    def update_iteration(
        self, iteration_id: int, *, notes: str | None = None, status: Any = None, error_message: str | None = None,
        traceback: str | None = None, end_date: datetime | None = _UNSET,
    ) -> Result:
        """Change an iteration. A status other than RUNNING stamps `end_date` unless one is given."""
        body: dict[str, Any] = {"notes": notes, "status_id": _enum_value(status), "error_message": error_message,
                                "traceback": traceback}
        body = {k: v for k, v in body.items() if v is not None}
        if end_date is not _UNSET:
            body["end_date"] = _when(end_date, "end_date")
        self._call("PATCH", f"/iteration/{check_id(iteration_id, 'iteration_id')}", body=body)
        return Result.UPDATED

    # -- iterations: reopening (resume of a requeued run) ---------------------------------------------

    def reopen_iteration(self, iteration_id: int, *, expected_status: Any, reason: str) -> Result:
        """Continue an iteration: RUNNING again, a notes line saying when, from what and why; `Conflict`
        unless it is still `expected_status`. Sent with an idempotency key, so a retry is applied once."""
        iteration_id = check_id(iteration_id, "iteration_id")
        body = {"expected_status": _enum_value(expected_status), "reason": reason}
        self._call("POST", f"/iteration/{iteration_id}/reopen", body=body)
        return Result.UPDATED

    def end_iteration(
        self, iteration_id: int, status: Any = 2, *, error_message: str = "", traceback: str = "",
        parameters: Mapping[str, Any] | None = None, points: Iterable[Sequence[Any]] | None = None,
        notes: str | None = None,
    ) -> Result:
        """Finish a RUNNING iteration with its final status (ending an ended iteration is refused), with
        its last `parameters`, `points` and `notes` written in the same transaction on the server."""
        ending = IterationEnding(
            iteration_id, status, error_message, traceback, parameters, listed_points(points), notes
        )
        body = _ending_body(ending)
        iteration_id = body.pop("iteration_id")
        self._write_or_journal(iteration_id, "end", 1, f"/iteration/{iteration_id}/end", body)
        return Result.UPDATED

    def end_iterations(self, endings: Sequence[IterationEnding]) -> int:
        """End several RUNNING iterations, each with its own status and last data, in one request and one
        transaction, all or nothing. Returns how many were ended."""
        body = []
        for n, item in enumerate(checked_batch(endings, "endings", IterationEnding)):
            with batch_item("endings", n):
                body.append(_ending_body(item))
        if not body:
            return 0
        return sum(int(data["count"]) for data in self._call_in_parts("POST", "/iteration/end", "endings", body))

    def delete_iteration(self, iteration_id: int) -> bool:
        """Deletes the iteration and its data; its children stay, as top-level iterations."""
        return self._deleted(_id_path("/iteration/{}", iteration_id, "iteration_id"))

    def heartbeat(self, *iteration_ids: int) -> None:
        """Mark these iterations alive now (only those still RUNNING)."""
        ids = [check_id(i, "iteration_id") for i in iteration_ids]
        if ids:
            self._call("POST", "/iteration/heartbeat", body={"iteration_ids": ids})

    def reap(
        self, older_than: float | timedelta = 300.0, *, experiment_id: int | None = None, force: bool = False
    ) -> list[int]:
        """Mark KILLED every RUNNING iteration whose heartbeat is older than `older_than` (seconds). The
        server refuses an age under its lease unless an admin `force`s it (its own reaper already acts at
        the lease)."""
        seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
            raise Unprocessable(f"older_than must be a non-negative number of seconds, got {older_than!r}",
                                field="older_than")
        body = {"older_than": float(seconds),
                "experiment_id": None if experiment_id is None else check_id(experiment_id, "experiment_id")}
        if force:
            body["force"] = True
        return list(self._call("POST", "/iteration/reap", body=body)["iteration_ids"])

    def with_iteration(
        self, experiment_id: int, *, parent_iteration_id: int | None = None, notes: str = "",
        snapshot: bool | None = None, name: str = "",
    ) -> IterationRun:
        """A context manager (and call form) that opens an iteration and finalises it truthfully."""
        return IterationRun(self, experiment_id, parent_iteration_id=parent_iteration_id, notes=notes,
                            snapshot=snapshot, name=name)

    # -- parameters -------------------------------------------------------------------------------

    def create_parameter(self, iteration_id: int, key: str, value: Any) -> Created:
        """A parameter, stored as text. A key is set once per iteration (Conflict otherwise)."""
        body = {"key": check_key(key), "value": format_parameter_value(value)}
        path = f"/parameter/iteration/{check_id(iteration_id, 'iteration_id')}"
        return self._created(self._call("POST", path, body=body), "parameter")

    def log_parameters(self, iteration_id: int, parameters: Mapping[str, Any]) -> int:
        """Set several parameters in one transaction, all or nothing; a key already set to the same
        value is skipped. Returns how many were written."""
        iteration_id = check_id(iteration_id, "iteration_id")
        rows = checked_parameters(parameters)
        if not rows:
            return 0
        data = self._write_or_journal(iteration_id, "parameters", len(rows),
                                      f"/parameter/iteration/{iteration_id}/batch", {"parameters": rows})
        return int(data["count"])

    def get_parameter(self, parameter_id: int) -> Parameter | None:
        return self._one(Parameter, _id_path("/parameter/{}", parameter_id, "parameter_id"))

    def get_parameters(self, iteration_id: int, *, limit: int | None = None, offset: int = 0) -> list[Parameter]:
        return self._list(Parameter, _id_path("/parameter/iteration/{}", iteration_id, "iteration_id"), limit, offset)

    def update_parameter(self, parameter_id: int, *, key: str | None = None, value: Any = _UNSET) -> Result:
        body: dict[str, Any] = {} if key is None else {"key": check_key(key)}
        if value is not _UNSET:
            body["value"] = format_parameter_value(value)
        self._call("PATCH", f"/parameter/{check_id(parameter_id, 'parameter_id')}", body=body)
        return Result.UPDATED

    def delete_parameter(self, parameter_id: int) -> bool:
        return self._deleted(_id_path("/parameter/{}", parameter_id, "parameter_id"))

    # -- metrics ----------------------------------------------------------------------------------

    def create_metric(
        self, iteration_id: int, key: str, value: float, *, step: int | None = None,
        recorded_at: datetime | float | None = None,
    ) -> Created:
        """One metric point. Without `step`, the key's next step (0, 1, 2, ...)."""
        body = {
            "key": check_key(key),
            "value": encode_float(check_metric_value(value)),
            "step": None if step is None else check_step(step),
            "recorded_at": _when(recorded_at, "recorded_at"),
        }
        path = f"/metric/iteration/{check_id(iteration_id, 'iteration_id')}"
        return self._created(self._call("POST", path, body=body), "metric")

    def log_metrics(
        self, iteration_id: int, metrics: Mapping[str, float], *, step: int | None = None,
        recorded_at: datetime | float | None = None,
    ) -> int:
        """Several keys at one step, in one transaction, all or nothing. Returns how many points were written."""
        iteration_id = check_id(iteration_id, "iteration_id")
        if not isinstance(metrics, Mapping):
            raise Unprocessable("metrics must be a mapping of key to number", field="metrics")
        items = [
            {"key": check_key(k, "metrics key"), "value": encode_float(check_metric_value(v, f"metrics[{k!r}]"))}
            for k, v in metrics.items()
        ]
        if not items:
            return 0
        body = {"metrics": items, "step": None if step is None else check_step(step),
                "recorded_at": _when(recorded_at, "recorded_at")}
        return int(self._call("POST", f"/metric/iteration/{iteration_id}/batch", body=body)["count"])

    def log_metric_points(self, iteration_id: int, points: Iterable[Sequence[Any]]) -> int:
        """The bulk path: `(key, value, step)` or `(key, value, step, recorded_at)` tuples, any number of
        steps, written in one transaction on the server (points beyond the server's request-size limit
        go in several requests, one transaction each). Returns how many were written."""
        iteration_id = check_id(iteration_id, "iteration_id")
        rows = _point_rows(points)
        if not rows:
            return 0
        answers = self._call_in_parts("POST", f"/metric/iteration/{iteration_id}/batch", "points", rows)
        return sum(int(data["count"]) for data in answers)

    def get_metric(self, metric_id: int) -> Metric | None:
        return self._one(Metric, _id_path("/metric/{}", metric_id, "metric_id"))

    def get_metrics(
        self, iteration_id: int, *, key: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[Metric]:
        """An iteration's metric points ordered by step then id (one key's series with `key=`)."""
        path = _id_path("/metric/iteration/{}", iteration_id, "iteration_id")
        return self._list(Metric, path, limit, offset, page_size=METRIC_PAGE_SIZE,
                          key=None if key is None else check_key(key))

    def get_latest_metrics(self, iteration_ids: Sequence[int]) -> dict[int, dict[str, float]]:
        """For each iteration, each key's value at its highest step: what a sweep table shows."""
        ids, chunks = _batched_ids(iteration_ids)
        out: dict[int, dict[str, float]] = {i: {} for i in ids}
        for chunk in chunks:
            data = self._call("POST", "/metric/latest", body={"iteration_ids": chunk})
            out.update({int(i): {k: decode_float(v) for k, v in keys.items()} for i, keys in data.items()})
        return out

    def get_parameter_values(self, iteration_ids: Sequence[int]) -> dict[int, dict[str, str]]:
        """For each iteration, its parameters as `{key: value}` (`{}` for none or an unknown id), in one
        request per 1000 ids: what a sweep table shows."""
        ids, chunks = _batched_ids(iteration_ids)
        out: dict[int, dict[str, str]] = {i: {} for i in ids}
        for chunk in chunks:
            data = self._call("POST", "/parameter/values", body={"iteration_ids": chunk})
            out.update({int(i): keys for i, keys in data.items()})
        return out

    def get_metric_series(
        self, iteration_ids: Sequence[int], key: str, *, max_points: int | None = None
    ) -> dict[int, list[tuple[int, float]]]:
        """Each iteration's `(step, value)` series for one key, ordered by step; with `max_points`, longer
        series are cut into min/max buckets by the server's database, many iterations per request."""
        ids = [check_id(i, "iteration_ids") for i in iteration_ids]
        key = check_key(key)
        max_points = check_max_points(max_points)
        out: dict[int, list[tuple[int, float]]] = {i: [] for i in ids}
        if max_points is None:
            # A whole series has no size bound, so it comes through the paged route, one iteration at a time.
            for iteration_id in dict.fromkeys(ids):
                out[iteration_id] = [(m.step, m.value) for m in self.get_metrics(iteration_id, key=key)]
            return out
        _, chunks = _batched_ids(ids, max(1, min(MAX_BATCH_IDS, MAX_SERIES_BUDGET // max_points)))
        for chunk in chunks:
            body = {"iteration_ids": chunk, "key": key, "max_points": max_points}
            data = self._call("POST", "/metric/series", body=body)
            for i, points in data.items():
                out[int(i)] = [
                    (step, value if type(value) is float else decode_float(value)) for step, value in points
                ]
        return out

    def get_best_child_iteration(
        self, iteration_id: int, key: str, *, mode: str = "max", status: Any = IterationStatus.SUCCEEDED,
    ) -> tuple[Iteration, float] | None:
        """The child with the best latest value of `key` (max or min), with that value; NaN never wins."""
        path = _id_path("/iteration/{}/best-child", iteration_id, "iteration_id")
        if not isinstance(mode, str):
            raise Unprocessable(f"mode must be 'max' or 'min', got {mode!r}", field="mode")
        wanted = "any" if status is None else status.name if isinstance(status, Enum) else str(status)
        if path is None:
            check_key(key)
            return None
        data = self._call("GET", path, params={"key": check_key(key), "mode": mode, "status": wanted}, missing=None)
        return None if data is None else (from_dict(Iteration, data["iteration"]), decode_float(data["value"]))

    def update_metric(self, metric_id: int, *, value: float | None = None, step: int | None = None) -> Result:
        body = {"value": None if value is None else encode_float(check_metric_value(value)),
                "step": None if step is None else check_step(step)}
        self._call("PATCH", f"/metric/{check_id(metric_id, 'metric_id')}",
                   body={k: v for k, v in body.items() if v is not None})
        return Result.UPDATED

    def delete_metric(self, metric_id: int) -> bool:
        return self._deleted(_id_path("/metric/{}", metric_id, "metric_id"))

    # -- tags -------------------------------------------------------------------------------------

    def create_tag(self, value: str) -> Created:
        return self._created(self._call("POST", "/tag/", body={"value": value}), "tag")

    def get_tag(self, tag: int | str) -> Tag | None:
        """By id, or by value when given a string."""
        if isinstance(tag, str):
            return self._one(Tag, "/tag/by-value", value=tag)
        return self._one(Tag, _id_path("/tag/{}", tag, "tag_id"))

    def get_tags(
        self, target: TagTarget | str | None = None, target_id: int | None = None, *, limit: int | None = None,
        offset: int = 0,
    ) -> list[Tag]:
        """Every tag, or the tags on one project, experiment or iteration."""
        if target is None:
            return self._list(Tag, "/tag/", limit, offset)
        path = _id_path(f"/tag/{_seg(_enum_value(target))}/{{}}", target_id, "target_id")
        if path is None:
            check_enum(target, TagTarget, "target")  # the server would have named a bad target first
        return self._list(Tag, path, limit, offset)

    def update_tag(self, tag_id: int, value: str) -> Result:
        self._call("PATCH", f"/tag/{check_id(tag_id, 'tag_id')}", body={"value": value})
        return Result.UPDATED

    def delete_tag(self, tag_id: int) -> bool:
        """Deletes the tag and detaches it from everything it was on."""
        return self._deleted(_id_path("/tag/{}", tag_id, "tag_id"))

    def add_tag(self, target: TagTarget | str, target_id: int, value: str) -> Created:
        """Attach a tag (created if new) to a project, experiment or iteration; Conflict if already on it."""
        path = f"/tag/{_seg(_enum_value(target))}/{check_id(target_id, 'target_id')}"
        return self._created(self._call("POST", path, body={"value": value}), "tag")

    def remove_tag(self, target: TagTarget | str, target_id: int, value: str) -> bool:
        path = f"/tag/{_seg(_enum_value(target))}/{check_id(target_id, 'target_id')}"
        return self._call("DELETE", path, params={"value": check_name(value, "value")}, missing=False) is not False

    # -- resources --------------------------------------------------------------------------------

    def create_resource(
        self, experiment_id: int, name: str, data: bytes | str | os.PathLike[str], *, description: str = ""
    ) -> Created:
        """Store artifact bytes (or a file's bytes) on an experiment, with their size and sha256."""
        experiment_id = check_id(experiment_id, "experiment_id")
        form = {"name": check_name(name), "description": check_text(description, "description")}
        files = {"data": (form["name"], resource_bytes(data), "application/octet-stream")}
        response = self._call("POST", f"/resource/experiment/{experiment_id}", data=form, files=files)
        return self._created(response, "resource")

    def get_resource(self, resource_id: int) -> Resource | None:
        return self._one(Resource, _id_path("/resource/{}", resource_id, "resource_id"))

    def get_resource_data(self, resource_id: int) -> bytes | None:
        path = _id_path("/resource/{}/data", resource_id, "resource_id")
        return None if path is None else self._call("GET", path, missing=None)

    def get_resources(self, experiment_id: int, *, limit: int | None = None, offset: int = 0) -> list[Resource]:
        return self._list(Resource, _id_path("/resource/experiment/{}", experiment_id, "experiment_id"), limit, offset)

    def update_resource(
        self, resource_id: int, *, name: str | None = None, description: str | None = None,
        data: bytes | str | os.PathLike[str] | None = None,
    ) -> Result:
        form = {}
        if name is not None:
            form["name"] = check_name(name)
        if description is not None:
            form["description"] = check_text(description, "description")
        files = {"data": ("data", resource_bytes(data), "application/octet-stream")} if data is not None else {}
        path = f"/resource/{check_id(resource_id, 'resource_id')}"
        self._call("PATCH", path, data=form, files=files or None)
        return Result.UPDATED

    def delete_resource(self, resource_id: int) -> bool:
        return self._deleted(_id_path("/resource/{}", resource_id, "resource_id"))
