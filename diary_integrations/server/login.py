"""Checking a username and password, for `POST /auth` and the dashboard's login form.

A login flood must not take the server's memory or its threads: each password hash (argon2, 64 MiB
and ~50 ms of CPU) runs only inside one of `DIARY_LOGIN_CONCURRENCY` slots, a login waits at most
`DIARY_LOGIN_QUEUE_SECONDS` for a slot (then 429), and logins run their database work and hashing on
a thread limiter of their own, so the threads every other route uses are never all taken by logins.
A username or address with too many recent failures is refused with 429 before any hash (throttle.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
from fastapi import Request

from ..tracker.records import User
from ..tracker.validation import MAX_PASSWORD, MAX_USERNAME
from .errors import ApiError


class LoginGate:
    def __init__(self, settings: Any) -> None:
        self.slots = asyncio.Semaphore(settings.login_concurrency)
        self.threads = anyio.CapacityLimiter(settings.login_concurrency + 2)
        self.queue_seconds = float(settings.login_queue_seconds)

    async def run(self, func: Any, *args: Any) -> Any:
        return await anyio.to_thread.run_sync(func, *args, limiter=self.threads)


def client_address(request: Request) -> str:
    # The peer address as the server sees it: behind a proxy, run uvicorn with --proxy-headers (and
    # --forwarded-allow-ips) so this is the user's address, never a header a client can set freely.
    return request.client.host if request.client else "unknown"


async def check_login(request: Request, username: str, password: str) -> tuple[User, int]:
    """The user and their token generation, or ApiError 401 / 429."""
    state = request.app.state
    gate: LoginGate = state.login_gate
    address = client_address(request)
    wait = await gate.run(state.login_throttle.retry_after, username, address)
    if wait:
        raise ApiError(429, "TOO_MANY_LOGINS", f"Too many failed logins; try again in {wait} s",
                       headers={"Retry-After": str(wait)})
    if len(username) > MAX_USERNAME or len(password) > MAX_PASSWORD:
        # No account can have such credentials: a failure, without spending a hash on a huge input.
        await gate.run(state.login_throttle.failed, username, address)
        raise ApiError(401, "INVALID_CREDENTIALS", "Invalid username or password")
    try:
        await asyncio.wait_for(gate.slots.acquire(), timeout=gate.queue_seconds)
    except (asyncio.TimeoutError, TimeoutError):
        raise ApiError(429, "LOGIN_BUSY", "Too many logins in progress; try again in 1 s",
                       headers={"Retry-After": "1"}) from None
    try:
        user = await gate.run(state.tracker.authenticate, username, password)
    finally:
        gate.slots.release()
    if user is None:
        await gate.run(state.login_throttle.failed, username, address)
        raise ApiError(401, "INVALID_CREDENTIALS", "Invalid username or password")
    await gate.run(state.login_throttle.succeeded, username)
    found = await gate.run(state.tracker.user_for_token, user.id)
    if found is None:  # deleted while logging in
        raise ApiError(401, "INVALID_CREDENTIALS", "Invalid username or password")
    return found
