"""`diary ui DATABASE`: serve the dashboard over a database file, a SQLAlchemy URL or a tracking server."""

from __future__ import annotations

import sys
from pathlib import Path


def _missing_file(target: str) -> Path | None:
    # A typo must not create an empty database: a plain path (or sqlite:/// URL) has to exist already.
    if target.startswith("sqlite:///"):
        path = target[len("sqlite:///"):]
    elif "://" in target:
        return None
    else:
        path = target
    if not path or path == ":memory:":
        return None
    return None if Path(path).expanduser().exists() else Path(path)


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

    from ..connection import connect, resolve_uri
    from ..server.run import bind
    from .app import create_dashboard

    target = resolve_uri(target)
    missing = _missing_file(target)
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
