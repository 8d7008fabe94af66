"""The dashboard served for real: `diary ui` as a process, and mounted in the tracking server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from diary_integrations import LocalTracker
from diary_integrations.client import RemoteTracker
from diary_integrations.dashboard import create_dashboard

from .conftest import auth_settings
from .processes import diary_ui
from .seed import CURVE_STEPS, seed


def test_diary_ui_serves_a_database_file(tmp_path: Path):
    tracker = LocalTracker(tmp_path / "sweep.db")
    demo = seed(tracker)
    tracker.close()
    with diary_ui(tmp_path / "sweep.db", tmp_path / "ui.log") as url:
        home = httpx.get(url + "/", follow_redirects=True)
        assert home.status_code == 200 and "Decision-tree sweep" in home.text
        sweep = httpx.get(f"{url}/ui/iterations/{demo.sweep_id}/sweep")
        assert "MemoryError: max_depth=12 blew the heap" in sweep.text
        assert httpx.get(f"{url}/ui/static/dashboard.js").status_code == 200


def test_diary_ui_refuses_a_missing_file(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "diary_integrations.cli", "ui", str(tmp_path / "typo.db"), "--port", "0"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1 and "no database at" in result.stderr
    assert not (tmp_path / "typo.db").exists()


def test_tracking_server_serves_the_dashboard_beside_its_api(server_url: str):
    remote = RemoteTracker(server_url)
    demo = seed(remote)
    root = httpx.get(server_url + "/", follow_redirects=False)
    assert root.status_code == 307 and root.headers["location"] == "/ui/"
    assert httpx.get(server_url + "/health").status_code == 200
    assert httpx.get(server_url + "/docs").status_code == 200
    assert httpx.get(f"{server_url}/iteration/{demo.sweep_id}").json()["id"] == demo.sweep_id
    page = httpx.get(f"{server_url}/ui/iterations/{demo.sweep_id}/sweep")
    assert page.status_code == 200 and f'class="succeeded best" data-iteration="{demo.best_id}"' in page.text
    remote.close()


def test_dashboard_over_a_remote_tracker(server_url: str):
    # A RemoteTracker lacks the batched queries: the dashboard falls back to protocol methods.
    remote = RemoteTracker(server_url)
    demo = seed(remote)
    with TestClient(create_dashboard(remote)) as client:
        page = client.get(f"/ui/iterations/{demo.sweep_id}/sweep?metric=loss")
        assert page.status_code == 200
        assert f'class="succeeded best" data-iteration="{demo.children[8]}"' in page.text
        assert page.text.count(f'data-points="{CURVE_STEPS}"') == 3
        series = client.get(f"/ui/api/iterations/{demo.children[2]}/series", params={"key": "loss"}).json()
        assert series["steps"] == list(range(CURVE_STEPS))
    remote.close()


def test_tracking_server_with_auth_asks_for_a_login(tmp_path: Path):
    from diary_integrations.server.app import create_app

    with TestClient(create_app(auth_settings(tmp_path))) as client:
        for url in ("/ui/", "/ui/iterations/1/sweep"):
            response = client.get(url, follow_redirects=False)
            assert response.status_code == 303 and response.headers["location"].startswith("/ui/login?next=")
        login = client.get("/ui/login")
        assert login.status_code == 200 and 'name="password"' in login.text
        # The API itself still guards its routes as before.
        assert client.get("/project").json()["code"] == "TOKEN_MISSING"
