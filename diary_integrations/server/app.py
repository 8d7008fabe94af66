"""The FastAPI app factory: `create_app(settings)` serves a database; `create_app(tracker)` serves a tracker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from .. import __version__
from ..tracker.local import DEFAULT_PASSWORD, DEFAULT_USERNAME
from ..tracker.local.users import _dummy_hash as dummy_hash
from .auth import TokenService
from .availability import DatabaseGuard, DatabaseState, InFlightLimit, is_unavailable
from .cluster import reap_round, startup_lock
from .encoding import GzipBodies
from .errors import install_error_handlers
from .fast_batch import FastMetricBatch
from .head import HeadAsGet
from .idempotency import IdempotencyKeys
from .limits import BodyLimit
from .login import LoginGate
from .responses import FastJSON
from .routes import auth, data, iterations, metric_batches, models, projects, resources, search, tags, users
from .settings import ServerSettings
from .throttle import LoginThrottle, counter_for

log = logging.getLogger("diary_integrations.server")
# Idempotency keys older than a day are pruned this often.
PRUNE_EVERY_SECONDS = 3600.0


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
        # Before the engine is made (check_admin_password below). No ping before each use: a dropped
        # connection is a 503 the client retries (availability.py), not worth a round trip per request.
        tracker.pool_size, tracker.pool_pre_ping = settings.db_pool_size, False
        owned = True
    else:
        settings = ServerSettings()
        settings.check()
        tracker, owned = config, False
    if settings.enable_auth:
        check_admin_password(tracker, settings)

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
    app.state.database = DatabaseState()
    app.state.tokens = TokenService(settings.jwt_secret, settings.token_ttl_seconds)
    app.state.login_throttle = LoginThrottle(settings, counter_for(app))
    app.state.login_gate = LoginGate(settings)
    dummy_hash()  # made now, so the first login of an unknown user takes no longer than any other
    set_tracker(app, tracker)
    install_error_handlers(app)
    # Innermost: the metric batch without FastAPI's routing (fast_batch.py); every middleware below applies.
    app.add_middleware(FastMetricBatch, server=app)
    app.add_middleware(IdempotencyKeys)
    app.add_middleware(HeadAsGet)
    # Inside BodyLimit: the compressed bytes are bounded and the token checked before anything is inflated.
    app.add_middleware(GzipBodies, server=app)
    app.add_middleware(BodyLimit, server=app)  # sizes and tokens are checked before any body is read
    # Outermost of ours: a database that went away is a 503 wherever it shows (availability.py), and a
    # full worker refuses at once, before reading anything.
    app.add_middleware(DatabaseGuard, server=app)
    app.add_middleware(InFlightLimit, server=app)
    origins = settings.cors_origins
    if origins:  # no CORS at all unless DIARY_CORS_ORIGINS names origins
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_credentials="*" not in origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            max_age=600,
        )
    for module in (auth, users, projects, search, iterations, metric_batches, data, tags, resources, models):
        app.include_router(module.router)
    # MLflow's tracking REST API (/api/2.0/mlflow/..., the artifact proxy): server/mlflow/.
    from .mlflow import mount_mlflow

    mount_mlflow(app)
    # The read-only dashboard at /ui/ (and / redirecting there): open with auth off, behind a login page
    # and the API's per-project read rules with auth on (dashboard/access.py).
    from ..dashboard import mount_dashboard

    mount_dashboard(app)
    return app


def check_admin_password(tracker: Any, settings: ServerSettings) -> None:
    """With auth on, `default` must not keep the password `default`: DIARY_ADMIN_PASSWORD sets its
    password at start-up; without it, a server whose `default` still has the default password refuses
    to start (anyone could log in as the administrator)."""
    engine = getattr(tracker, "engine", None)
    if engine is None:
        _check_admin_password(tracker, settings)
        return
    with startup_lock(engine):  # servers starting together over one database set it once
        _check_admin_password(tracker, settings)


def _check_admin_password(tracker: Any, settings: ServerSettings) -> None:
    wanted = settings.admin_password
    if wanted is not None:
        if wanted == DEFAULT_PASSWORD:
            raise ValueError("DIARY_ADMIN_PASSWORD must not be the default password 'default'")
        admin = tracker.get_user(DEFAULT_USERNAME)
        if admin is not None and tracker.authenticate(DEFAULT_USERNAME, wanted) is None:
            tracker.update_user(admin.id, password=wanted)  # also ends the tokens issued for the old one
        return
    if tracker.has_default_password():
        raise ValueError(
            "DIARY_ENABLE_AUTH is on but the administrator 'default' still has the password 'default'; "
            "set DIARY_ADMIN_PASSWORD (it sets that password at start-up) or change it with "
            "`diary user passwd default --uri DATABASE`"
        )


def set_tracker(app: FastAPI, tracker: Any) -> None:
    """Serve another tracker from now on (the caller closes the old one). A served LocalTracker stops
    recording its own process beside the iterations it creates: they run in the clients' processes, and
    the server's reaper watches their leases instead."""
    if hasattr(tracker, "record_processes"):
        tracker.record_processes = False
    app.state.tracker = tracker
    app.state.anonymous = None  # the `default` user is looked up again in the new database


def reap_once(app: FastAPI, *, prune_keys: bool = False) -> list[int] | None:
    """End KILLED ("heartbeat lost") the served tracker's RUNNING iterations whose lease expired, if it
    is this process's turn (cluster.py): None when another server process has it."""
    tracker = app.state.tracker
    settings = app.state.settings
    if hasattr(tracker, "engine"):
        return reap_round(tracker, settings.heartbeat_lease, settings.reap_every, prune_keys=prune_keys,
                          mlflow_lease=settings.mlflow_run_lease)
    reap = getattr(tracker, "reap", None)
    return [] if reap is None else reap(settings.heartbeat_lease)


async def _reap_forever(app: FastAPI) -> None:
    """The server's reaper: every few seconds, runs whose heartbeat stopped for a lease become KILLED, so
    a client killed without a word does not stay RUNNING; now and then, day-old idempotency keys go.
    Every server process runs this loop; they take turns through the database (cluster.py)."""
    settings = app.state.settings
    pruned_at = -PRUNE_EVERY_SECONDS
    while True:
        # Jittered, so server processes started together do not keep one phase, where the same one would
        # win every turn and the others only ever skip.
        await asyncio.sleep(settings.reap_every * random.uniform(0.5, 1.5))
        try:
            due = time.monotonic() - pruned_at >= PRUNE_EVERY_SECONDS
            reaped = await asyncio.to_thread(reap_once, app, prune_keys=due)
            if reaped is not None and due:
                pruned_at = time.monotonic()
            app.state.database.came_back()
            if reaped:
                log.warning("diary server: heartbeat lost, marked KILLED: %s", ", ".join(map(str, reaped)))
        except Exception as exc:  # a database hiccup must not end the reaper; the next round tries again
            if is_unavailable(exc):
                app.state.database.went_away(exc)  # logged once per outage, not once per round
            else:
                log.exception("diary server: the reaper failed this round")
