"""Fixtures for the dashboard tests: a seeded SQLite file, and the dashboard app over it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from diary_integrations import LocalTracker
from diary_integrations.dashboard import create_dashboard

from .seed import Demo, seed


@pytest.fixture
def demo_db(tmp_path: Path) -> Iterator[tuple[LocalTracker, Demo]]:
    tracker = LocalTracker(tmp_path / "sweep.db", artifact_root=None)
    demo = seed(tracker)
    yield tracker, demo
    tracker.close()


@pytest.fixture
def client(demo_db: tuple[LocalTracker, Demo]) -> Iterator[TestClient]:
    with TestClient(create_dashboard(demo_db[0])) as client:
        yield client


@pytest.fixture
def demo(demo_db: tuple[LocalTracker, Demo]) -> Demo:
    return demo_db[1]
