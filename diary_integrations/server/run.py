"""Serving the app with uvicorn on a socket bound before anyone is told the URL: in this process, or in
N worker processes (`diary server --workers N`) that share the socket and build the app from `DIARY_*`."""

from __future__ import annotations

import socket
import sys
from typing import Any

# Longer than the client's keep-alive expiry, so the client always drops an idle connection first
# and never sends a request on a socket the server is closing.
KEEP_ALIVE_SECONDS = 75
# How long a worker may take to answer the supervisor's health ping before it is replaced.
WORKER_HEALTHCHECK_SECONDS = 60


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 picks a free one (read it back with getsockname)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets whose
    # proto says TCP. With proto 0, every response's second write waited for the client's delayed ACK:
    # ~44 ms per request on loopback instead of ~1.5 ms.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


# What each worker process builds its app from (`create_app()` reads its settings from `DIARY_*`).
APP_FACTORY = "diary_integrations.server.app:create_app"


def serve(
    app: Any, host: str = "127.0.0.1", port: int = 9000, *, log_level: str = "warning", workers: int = 1
) -> None:
    """Run until interrupted. Prints `diary server listening on http://host:port` once the socket listens,
    so a parent process that asked for port 0 learns the port. With `workers > 1`, `app` is not served:
    uvicorn spawns that many processes on the one socket, each building its own app with
    `create_app()` from the environment (the caller puts its settings there first)."""
    import uvicorn

    sock = bind(host, port)
    actual = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(f"diary server listening on http://{shown}:{actual}", flush=True)
    options = dict(log_level=log_level, timeout_keep_alive=KEEP_ALIVE_SECONDS, access_log=False, lifespan="on")
    if workers <= 1:
        uvicorn.Server(uvicorn.Config(app, **options)).run(sockets=[sock])
    else:
        import inspect

        from uvicorn.supervisors import Multiprocess

        if "timeout_worker_healthcheck" in inspect.signature(uvicorn.Config).parameters:
            # uvicorn kills a worker that does not answer its supervisor's ping in time (5 s by default),
            # which a worker still importing on a loaded machine may not: it would be killed forever.
            options["timeout_worker_healthcheck"] = WORKER_HEALTHCHECK_SECONDS
        config = uvicorn.Config(APP_FACTORY, factory=True, workers=workers, **options)
        if "target" in inspect.signature(Multiprocess).parameters:  # older uvicorn releases take the target
            Multiprocess(config, target=uvicorn.Server(config).run, sockets=[sock]).run()
        else:
            Multiprocess(config, sockets=[sock]).run()
    sys.stdout.flush()
