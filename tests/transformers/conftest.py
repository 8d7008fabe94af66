"""Where the Transformers tests write: a SQLite file, or a live tracking server on a fresh database."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("transformers", reason="the Transformers tests need the [transformers] extra")


@pytest.fixture(params=["sqlite", "server"])
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "server":
        return request.getfixturevalue("server_url")
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.fixture
def sqlite_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"
