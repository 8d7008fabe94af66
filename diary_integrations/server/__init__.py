"""The tracking server: FastAPI routes over a LocalTracker, with JWT auth and per-project permissions.

    diary server --host 127.0.0.1 --port 9000 --db postgresql+psycopg://localhost/test
"""

from .app import create_app, set_tracker
from .run import serve
from .settings import ServerSettings

__all__ = ["ServerSettings", "create_app", "serve", "set_tracker"]
