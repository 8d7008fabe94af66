"""`diary ui DATABASE`: serve the dashboard over a database file, a SQLAlchemy URL or a tracking server."""

from __future__ import annotations

import sys


def serve_dashboard(
    target: str | None,
    *,
    host: str = "127.0.0.1",
    port: int = 9001,
    username: str | None = None,
    password: str | None = None,
) -> int:
    """Run the dashboard until interrupted; prints `diary ui listening on http://host:port/` once it listens."""
    import uvicorn

    from ..connection import check_uri, connect, missing_database_file, resolve_uri
    from ..server.run import bind
    from .app import create_dashboard

    target = check_uri(resolve_uri(target))
    missing = missing_database_file(target)
    if missing is not None:
        print(f"diary ui: no database at {missing}", file=sys.stderr)
        return 1
    tracker = connect(target, username=username, password=password)
    sock = bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    print(f"diary ui listening on http://{shown}:{sock.getsockname()[1]}/", flush=True)
    try:
        config = uvicorn.Config(create_dashboard(tracker), log_level="warning", access_log=False)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        tracker.close()
    return 0
