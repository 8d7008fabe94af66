"""The FastAPI app factory: `create_app(settings)` serves a database; `create_app(tracker)` serves a tracker."""

from __future__ import annotations

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

        tracker = LocalTracker(settings.database_url, artifact_root=settings.tracker_artifact_root)
        owned = True
    else:
        settings = ServerSettings()
        settings.check()
        tracker, owned = config, False

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        getattr(app.state.tracker, "engine", None)  # create and migrate the database before the first request
        yield
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
    """Serve another tracker from now on (the caller closes the old one)."""
    app.state.tracker = tracker
    app.state.anonymous = None  # the `default` user is looked up again in the new database
