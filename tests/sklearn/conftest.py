"""Fixtures for the scikit-learn integration: a tracker URI of every kind (a SQLite file, a live
server on a fresh SQLite file) and small data sets that scikit-learn ships."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.datasets import load_iris

from diary_integrations import connect

URI_KINDS = ["sqlite", "server"]


@pytest.fixture(params=URI_KINDS)
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "server":
        return request.getfixturevalue("server_url")
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.fixture
def sqlite_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.fixture(scope="session")
def iris():
    return load_iris(return_X_y=True)


@pytest.fixture
def reader(uri: str):
    tracker = connect(uri)
    yield tracker
    tracker.close()
