"""Fixtures for the dashboard tests: a seeded SQLite file, and the dashboard app over it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from diary_integrations import LocalTracker
from diary_integrations.dashboard import create_dashboard

from .seed import Demo, seed


def auth_settings(tmp_path: Path) -> object:
    """A tracking server's settings with auth on, over a SQLite file in `tmp_path`."""
    from diary_integrations.server.settings import ServerSettings

    return ServerSettings(
        enable_auth=True, jwt_secret="a test secret that is long enough for HS256 " * 2,
        database_url=f"sqlite:///{tmp_path / 'auth.db'}", artifact_root=tmp_path / "artifacts",
        admin_password="a-test-admin-password",
    )


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


# The browser tests' Chromium (Debian's, driven through Playwright) and a page per test that fails the
# test on any script error; one browser per test module.
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], f"script errors in the page: {errors}"
