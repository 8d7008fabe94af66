"""The connection under RemoteTracker: the pooled HTTP client, logging in, sending a request and mapping
the server's answers to the tracker's exceptions, walking pages."""

from __future__ import annotations

import threading
import time
import zlib
from typing import Any, TypeVar

import httpx
import orjson

from ..tracker.enums import Result
from ..tracker.errors import (
    AuthError,
    Conflict,
    DiaryError,
    IterationEnded,
    NotFound,
    PermissionDenied,
    TransportError,
    Unprocessable,
)
from ..tracker.keys import HEADER as IDEMPOTENCY_HEADER
from ..tracker.keys import current_key, using_key
from ..tracker.lifecycle import Heartbeat
from ..tracker.records import (
    Created,
    from_dict,
)
from ..tracker.validation import (
    check_page,
)
from . import retry
from .base import (
    _DECODERS,
    _UNSET,
    PAGE_SIZE,
    SMALL_BODY_BYTES,
    R,
)
from .idempotency import PendingWrite, cut_into_parts, decode_answer, part_key, write_key

_Self = TypeVar("_Self", bound="RemoteBase")
# gzip (zlib's fast level 1, in the gzip wrapper) for bodies of at least this many bytes, when the server
# accepts it: a large batch crosses a network in a fifth of the bytes, while the small requests of a
# training loop are not worth the CPU (docs/decisions.md, "gzip for large bodies").
GZIP_MIN_BYTES = 64 * 1024
# A client that could not read the server's /health (the server was starting, or away) asks again after
# this many seconds: one failed first call must not cost a long run its gzip and coalesced batches.
HEALTH_RETRY_SECONDS = 30.0
_GZIP_LEVEL, _GZIP_WBITS = 1, 16 + zlib.MAX_WBITS
_ERRORS: dict[int, type[DiaryError]] = {
    401: AuthError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    422: Unprocessable,
}


class RemoteBase:
    """The connection to a tracking server (`http://host:9000`), which every entity group sends through.

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
        self._health_asked_at: float | None = None  # when a /health call last failed (monotonic)
        self._server_gzip = False  # whether the server said it inflates gzip bodies (GET /health)
        self._server_groups = False  # whether it takes several iterations' points in one request (/metric/batch)
        # Bodies of at least this many bytes go gzipped (None: never).
        self.gzip_min_bytes: int | None = GZIP_MIN_BYTES

    # -- connection -------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"RemoteTracker({self.url!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "username": self.username,
            "password": self.password,
            "token": self.token,
            "timeout": self.timeout,
            "retries": self.retries,
            "replay_journal": self.replay_journal,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["url"],
            username=state["username"],
            password=state["password"],
            token=state["token"],
            timeout=state["timeout"],
            retries=state["retries"],
            replay_journal=state.get("replay_journal", True),
        )

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections; the tracker's heartbeat stops too (a closed tracker beats no more)."""
        Heartbeat.stop_for(self)
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
        """One request, retried as `retry.send` allows."""
        retries = self.retries if retries is None else retries
        return retry.send(self._http(), self.url, method, path, keyed=keyed, retries=retries, **kwargs)

    def _auth_header(self, renew: bool = False) -> dict[str, str]:
        if (self.token is None or renew) and self.username is not None and self.password is not None:
            with self._login_lock:
                if self.token is None or renew:
                    self.token = self._login(self.username, self.password)["access_token"]
        return {"authorization": f"Bearer {self.token}"} if self.token else {}

    def _login(self, username: str, password: str) -> dict[str, Any]:
        response = self._send(
            "POST",
            "/auth",
            content=orjson.dumps({"username": username, "password": password}),
            headers={"content-type": "application/json"},
        )
        if response.status_code != 200:
            self._raise(response)
        return response.json()

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        missing: Any = _UNSET,
        retries: int | None = None,
        **kwargs: Any,
    ) -> Any:
        """Send, map errors to the tracker's exceptions, and return the decoded JSON (or `missing` on 404).
        A JSON write carries an idempotency key (the one `using_key` gives, else a new one), so its
        retries, and a journal's replay of it, are applied once."""
        headers = dict(kwargs.pop("headers", {}))
        key = None
        if body is not None:
            kwargs["content"] = self._encoded(orjson.dumps(body), headers)
            headers["content-type"] = "application/json"
            if method != "GET":
                key = write_key()
                headers[IDEMPOTENCY_HEADER] = key
        if params:
            params = {k: v for k, v in params.items() if v is not None}
        try:
            for attempt in range(2):
                response = self._send(
                    method,
                    path,
                    keyed=key is not None,
                    params=params,
                    retries=retries,
                    headers={**headers, **self._auth_header(attempt > 0)},
                    **kwargs,
                )
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

    def _encoded(self, content: bytes, headers: dict[str, str]) -> bytes:
        """A JSON body as it goes: gzipped (with its header) when large and the server takes gzip."""
        wanted = self.gzip_min_bytes
        if wanted is None or len(content) < wanted:
            return content
        self.body_budget()  # asks the server once what it takes
        if not self._server_gzip:
            return content
        headers["content-encoding"] = "gzip"
        packer = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, _GZIP_WBITS)
        return packer.compress(content) + packer.flush()

    def body_budget(self) -> int:
        """The most JSON bytes one request of this client carries: the server's limit, less a margin.
        (Inflated bytes: a gzipped body must fit the limit both as sent and once inflated.)"""
        if self._body_budget is not None:
            return self._body_budget
        limit = 32 * 1024 * 1024  # the server's default, until it says otherwise
        failed_lately = self._health_asked_at is not None and time.monotonic() - self._health_asked_at < (
            HEALTH_RETRY_SECONDS)
        if not failed_lately:
            try:
                answer = self._send("GET", "/health")
                if answer.status_code == 200:
                    health = answer.json()
                    limit = int(health.get("max_request_bytes", limit))
                    self._server_gzip = "gzip" in (health.get("request_encodings") or ())
                    self._server_groups = health.get("multi_iteration_batch") is True
                    self._body_budget = max(SMALL_BODY_BYTES, limit - 64 * 1024)
                    return self._body_budget
            except (TransportError, ValueError, AttributeError, TypeError):
                pass
            self._health_asked_at = time.monotonic()  # plain, single-iteration requests until it answers
        return max(SMALL_BODY_BYTES, limit - 64 * 1024)

    def _call_in_parts(
        self,
        method: str,
        path: str,
        field: str,
        items: list[Any],
        *,
        extra: dict[str, Any] | None = None,
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
        parts = cut_into_parts(items, self.body_budget() - len(orjson.dumps({**extra, field: []})))
        given = current_key()
        answers = []
        for number, part in enumerate(parts):
            if given is None:
                answers.append(self._call(method, path, body={**extra, field: part}, params=params))
                continue
            with using_key(part_key(given, number)):
                answers.append(self._call(method, path, body={**extra, field: part}, params=params))
        return answers

    def replay(self, write: PendingWrite, *, retries: int | None = None, timeout: float | None = None) -> Any:
        """Send a write again exactly as it first went (same idempotency key): the server applies it
        once, however many times it arrives. Returns what the method that made the write returns
        (`decode_answer`): a list of ids for `create_iterations`, `Created` for a create, a count for a
        batch. `retries` and `timeout` override the tracker's for this send (a journal's quick probe of a
        server that was gone)."""
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        with using_key(write.idempotency_key):
            answer = self._call(write.method, write.path, body=write.body, params=write.params, retries=retries,
                                **extra)
        return decode_answer(answer)

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
            raise TransportError(
                f"{response.request.method} {response.request.url}: HTTP {response.status_code} {code}: {message}"
            )
        error = cls(message, field=field)
        error.code = code  # the server's precise code (TOKEN_EXPIRED, ADMIN_REQUIRED, ...)
        raise error

    def _one(self, cls: type[R], path: str | None, **params: Any) -> R | None:
        if path is None:
            return None
        data = self._call("GET", path, params=params or None, missing=None)
        return None if data is None else from_dict(cls, data)

    def _list(
        self,
        cls: type[R],
        path: str | None,
        limit: int | None,
        offset: int,
        *,
        page_size: int = PAGE_SIZE,
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
