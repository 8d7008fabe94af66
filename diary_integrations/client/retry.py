"""The retry policy of one request: when a failed send is repeated, and how long it waits between tries.

A 503 carries `Retry-After` (a full server, or its database away): the wait is about that, spread by
jitter (half to one and a half of it) so the writers a busy server turned away do not all come back in
the same instant.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from typing import Any

import httpx

from ..tracker.errors import (
    TransportError,
)

# Methods whose repetition cannot write twice; only these (and writes sent with an idempotency key) are
# retried once a request may have left.
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"})
# Answers that mean "the server is restarting or a proxy lost it", worth a retry when a repeat is safe.
_RETRY_STATUSES = frozenset({502, 503, 504})
# A wait is at most this long however late a server asks to be tried again (seconds).
MAX_WAIT_SECONDS = 10.0
# How many answers this process retried, by status (benchmarks/load_server.py reports the 503s).
retried: Counter[int] = Counter()
_retried_lock = threading.Lock()


def _not_started(response: httpx.Response) -> bool:
    """A 503 SERVER_BUSY was refused before the server read the request: safe to repeat for any method."""
    if response.status_code != 503:
        return False
    try:
        return response.json().get("code") == "SERVER_BUSY"
    except ValueError:
        return False


def _asked_wait(response: httpx.Response) -> float:
    """The server's `Retry-After` in seconds (0 when absent or a date)."""
    try:
        return min(float(response.headers.get("retry-after", 0)), MAX_WAIT_SECONDS)
    except ValueError:
        return 0.0


def send(
    client: httpx.Client, url: str, method: str, path: str, *, keyed: bool, retries: int, **kwargs: Any
) -> httpx.Response:
    """One request with retries: a refused connection is retried for every method (nothing was
    sent), any other transport failure (or a 502/503/504) only where a repeat cannot write twice:
    idempotent methods, and writes carrying an idempotency key."""
    repeatable = keyed or method in _IDEMPOTENT
    delay = 0.1
    for attempt in range(retries + 1):
        asked = 0.0
        try:
            response = client.request(method, path, **kwargs)
            status = response.status_code
            if not (status in _RETRY_STATUSES and attempt < retries and (repeatable or _not_started(response))):
                return response
            with _retried_lock:
                retried[status] += 1
            asked = _asked_wait(response)
            failure: Exception = TransportError(f"HTTP {status}")
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            failure = exc
        except httpx.TransportError as exc:
            if not repeatable:
                raise TransportError(f"{method} {path} failed: {type(exc).__name__}: {exc}") from exc
            failure = exc
        if attempt < retries:
            # Jitter, so the writers a busy server turned away come back spread out: around the asked
            # wait (half to one and a half of it), else the growing delay plus up to half of it.
            time.sleep(asked * (0.5 + random.random()) if asked > delay else delay * (1 + random.random() / 2))
            delay = min(delay * 2, 3.0)
    raise TransportError(
        f"{method} {url}{path} failed after {retries + 1} attempts: {type(failure).__name__}: {failure}"
    ) from failure
