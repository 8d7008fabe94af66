"""The PostgreSQL server the tests use (127.0.0.1:5432, trust auth, database `test`), in a module of its
own so test modules can import it: `from conftest import ...` finds whichever conftest.py was imported
last (tests/sklearn, tests/mlflow and tests/optuna have their own)."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, text

POSTGRES_URL = os.environ.get("DIARY_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

_pg_state: dict[str, str | None] = {}


def postgres_problem() -> str | None:
    """None when PostgreSQL answers, else why not (checked once per session)."""
    if "problem" not in _pg_state:
        try:
            engine = create_engine(POSTGRES_URL)
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
            _pg_state["problem"] = None
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            _pg_state["problem"] = f"PostgreSQL at {POSTGRES_URL} is not reachable: {exc}"
    return _pg_state["problem"]


def require_postgres() -> None:
    problem = postgres_problem()
    if problem:
        if IN_CI:
            pytest.fail(problem)
        pytest.skip(problem)
