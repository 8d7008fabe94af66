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
    """Run the dashboard until interrupted; prints `diary ui listening on http://host:port/` once it listens
    (on stdout, its first line), after checking that the database or server answers."""
    from ..connection import check_uri, connect, missing_database_file, resolve_uri

    target = check_uri(resolve_uri(target))
    missing = missing_database_file(target)
    if missing is not None:
        print(f"diary ui: no database at {missing}", file=sys.stderr)
        return 1
    # Loading the web stack takes seconds on a busy machine: say something first (stderr, so the URL stays
    # stdout's first line for scripts).
    print(f"diary ui: opening {target} ...", file=sys.stderr, flush=True)
    import uvicorn

    from ..server.run import bind
    from .app import create_dashboard

    tracker = connect(target, username=username, password=password)
    try:
        tracker.get_projects(limit=1)  # a server that is down or a wrong password fails here, not per page
    except BaseException:
        tracker.close()
        raise
    sock = bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    print(f"diary ui listening on http://{shown}:{sock.getsockname()[1]}/", flush=True)
    try:
        config = uvicorn.Config(create_dashboard(tracker), log_level="warning", access_log=False)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        tracker.close()
    return 0
