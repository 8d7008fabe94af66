"""A fresh PostgreSQL schema for one benchmark's data, and how to drop it."""

from __future__ import annotations

import uuid
from collections.abc import Callable


def fresh_schema(server_url: str, prefix: str) -> tuple[str, Callable[[], None]]:
    """Create a schema named `prefix_<random>` on `server_url`; return a URL whose connections use it
    (search_path) and a function that drops it with everything in it."""
    from sqlalchemy import create_engine, text

    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    joiner = "&" if "?" in server_url else "?"
    return f"{server_url}{joiner}options=-csearch_path%3D{schema}", drop
