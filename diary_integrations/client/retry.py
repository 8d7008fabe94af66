"""The retry policy of one request: when a failed send is repeated, and how long it waits between tries."""

from __future__ import annotations

import random
import time
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


def send(
    client: httpx.Client, url: str, method: str, path: str, *, keyed: bool, retries: int, **kwargs: Any
) -> httpx.Response:
    """One request with retries: a refused connection is retried for every method (nothing was
    sent), any other transport failure (or a 502/503/504) only where a repeat cannot write twice:
    idempotent methods, and writes carrying an idempotency key."""
    repeatable = keyed or method in _IDEMPOTENT
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
        f"{method} {url}{path} failed after {retries + 1} attempts: {type(failure).__name__}: {failure}"
    ) from failure
