"""The dashboard as an ASGI piece: `create_dashboard(tracker)` for `diary ui`, `mount_dashboard(app)` for
the tracking server. Pages live under `/ui/` (the REST API owns `/project/...`, `/iteration/...`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..server.head import HeadAsGet
from .routes import FAVICON, PREFIX, router

STATIC = Path(__file__).parent / "static"


def mount_dashboard(app: FastAPI) -> FastAPI:
    """Add the dashboard to an app whose `app.state.tracker` it reads: pages under `/ui/`, `/` redirects there."""
    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="dashboard-static")

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=307)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(FAVICON, media_type="image/svg+xml")

    return app


def create_dashboard(tracker: Any) -> FastAPI:
    """A read-only dashboard over any tracker (LocalTracker or RemoteTracker); the caller closes the tracker."""
    app = FastAPI(title="diary dashboard", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.tracker = tracker
    app.add_middleware(HeadAsGet)
    return mount_dashboard(app)
