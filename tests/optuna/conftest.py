"""Tracker URIs for the Optuna tests: a SQLite file, and a live server on a fresh SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("optuna", reason="the Optuna tests need the [optuna] extra")


@pytest.fixture(params=["sqlite", "server"])
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "server":
        return request.getfixturevalue("server_url")
    return f"sqlite:///{tmp_path / 'runs.db'}"
