"""The FastAPI app factory: `create_app(settings)` serves a database; `create_app(tracker)` serves a tracker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse

from .. import __version__
from .auth import TokenService
from .errors import install_error_handlers
from .head import HeadAsGet
from .idempotency import IdempotencyKeys
from .responses import FastJSON
from .routes import auth, data, iterations, projects, resources, tags, users
from .settings import ServerSettings

log = logging.getLogger("diary_integrations.server")
# Idempotency keys older than a day are pruned this often.
PRUNE_EVERY_SECONDS = 3600.0

DASHBOARD_OFF = (
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>diary: dashboard off</title></head>"
    "<body><h1>The dashboard is off while auth is enabled</h1><p>It has no login yet, so a server with "
    "<code>DIARY_ENABLE_AUTH</code> on does not serve it. Run <code>diary ui DATABASE</code> where the "
    "database is to browse it.</p></body></html>"
)


def create_app(config: ServerSettings | Any = None) -> FastAPI:
    """The tracking server's app. Give it settings (default: from `DIARY_*` and `.env`), or a tracker to
    serve as it is (a LocalTracker; the app then leaves closing it to you)."""
    if config is None or isinstance(config, ServerSettings):
        settings = config or ServerSettings()
        settings.check()
        from ..tracker.local import LocalTracker

        tracker = LocalTracker(
            settings.database_url, artifact_root=settings.tracker_artifact_root, record_processes=False
        )
        owned = True
    else:
        settings = ServerSettings()
        settings.check()
        tracker, owned = config, False

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        getattr(app.state.tracker, "engine", None)  # create and migrate the database before the first request
        reaper = asyncio.create_task(_reap_forever(app), name="diary-reaper")
        try:
            yield
        finally:
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper
            if owned:
                app.state.tracker.close()

    app = FastAPI(
        title="diary-integrations tracking server",
        version=__version__,
        description="DearDiary-style experiment tracking over REST: projects, experiments, iteration trees.",
        default_response_class=FastJSON,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.tokens = TokenService(settings.jwt_secret, settings.token_ttl_seconds)
    set_tracker(app, tracker)
    install_error_handlers(app)
    origins = settings.cors_origins
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_credentials="*" not in origins,
        allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
        max_age=600,
    )
    app.add_middleware(IdempotencyKeys)
    app.add_middleware(HeadAsGet)
    for module in (auth, users, projects, iterations, data, tags, resources):
        app.include_router(module.router)
    if not settings.enable_auth:
        # The read-only dashboard at /ui/ (and / redirecting there) reads as the server's own tracker,
        # without a login, so it is served only where the API is open to everyone anyway.
        from ..dashboard import mount_dashboard

        mount_dashboard(app)
    else:
        # Say why there is no dashboard rather than the API's bare NOT_FOUND, which reads like a broken install.
        @app.get("/ui/{rest:path}", include_in_schema=False)
        def dashboard_off(rest: str) -> HTMLResponse:
            return HTMLResponse(DASHBOARD_OFF, status_code=404)

    return app


def set_tracker(app: FastAPI, tracker: Any) -> None:
    """Serve another tracker from now on (the caller closes the old one). A served LocalTracker stops
    recording its own process beside the iterations it creates: they run in the clients' processes, and
    the server's reaper watches their leases instead."""
    if hasattr(tracker, "record_processes"):
        tracker.record_processes = False
    app.state.tracker = tracker
    app.state.anonymous = None  # the `default` user is looked up again in the new database


def reap_once(app: FastAPI) -> list[int]:
    """End KILLED ("heartbeat lost") the served tracker's RUNNING iterations whose lease expired."""
    tracker = app.state.tracker
    reap = getattr(tracker, "reap", None)
    return [] if reap is None else reap(app.state.settings.heartbeat_lease)


async def _reap_forever(app: FastAPI) -> None:
    """The server's reaper: every few seconds, runs whose heartbeat stopped for a lease become KILLED, so
    a client killed without a word does not stay RUNNING; now and then, day-old idempotency keys go."""
    from ..tracker.idempotency import prune

    settings = app.state.settings
    pruned_at = -PRUNE_EVERY_SECONDS
    while True:
        await asyncio.sleep(settings.reap_every)
        try:
            reaped = await asyncio.to_thread(reap_once, app)
            if reaped:
                log.warning("diary server: heartbeat lost, marked KILLED: %s", ", ".join(map(str, reaped)))
            engine = getattr(app.state.tracker, "engine", None)
            if engine is not None and time.monotonic() - pruned_at >= PRUNE_EVERY_SECONDS:
                await asyncio.to_thread(prune, engine)
                pruned_at = time.monotonic()
        except Exception:  # a database hiccup must not end the reaper; the next round tries again
            log.exception("diary server: the reaper failed this round")
