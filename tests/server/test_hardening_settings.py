"""Start-up refusals and the in-process pieces of the hardened server (no server process needed):
short JWT secrets, CORS only for named origins (Idempotency-Key still allowed), the login page's
redirect staying on the dashboard, and `diary user` on a database file."""

from __future__ import annotations

import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from diary_integrations import LocalTracker
from diary_integrations.server import ServerSettings, create_app

SECRET = "s" * 40


def _settings(tmp_path, **extra):
    return ServerSettings(database_url=f"sqlite:///{tmp_path / 'x.db'}", artifact_root=tmp_path / "art", **extra)


def test_short_secret_and_default_password_are_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 32 bytes"):
        create_app(_settings(tmp_path, enable_auth=True, jwt_secret="a", admin_password="pw-pw-pw"))
    with pytest.raises(ValueError, match="DIARY_ADMIN_PASSWORD"):
        create_app(_settings(tmp_path, enable_auth=True, jwt_secret=SECRET))
    with pytest.raises(ValueError, match="must not be the default password"):
        create_app(_settings(tmp_path, enable_auth=True, jwt_secret=SECRET, admin_password="default"))
    with pytest.raises(ValueError, match="CORS"):
        create_app(_settings(tmp_path, enable_auth=True, jwt_secret=SECRET, admin_password="pw-pw-pw",
                             cors_origins=["*"]))


def test_cors_only_for_named_origins(tmp_path):
    preflight = {"origin": "https://app.example", "access-control-request-method": "POST",
                 "access-control-request-headers": "idempotency-key, content-type"}
    with TestClient(create_app(_settings(tmp_path))) as client:
        assert "access-control-allow-origin" not in client.options("/project/", headers=preflight).headers
    named = _settings(tmp_path, cors_origins=["https://app.example"])
    with TestClient(create_app(named)) as client:
        answer = client.options("/project/", headers=preflight)
        assert answer.headers["access-control-allow-origin"] == "https://app.example"
        assert "idempotency-key" in answer.headers["access-control-allow-headers"].lower()
        other = client.options("/project/", headers={**preflight, "origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_login_redirect_stays_on_the_dashboard(tmp_path):
    app = create_app(_settings(tmp_path, enable_auth=True, jwt_secret=SECRET, admin_password="pw-pw-pw"))
    with TestClient(app) as client:
        for target, expected in (("https://evil.example/", "/ui/"), ("//evil.example/ui/", "/ui/"),
                                 ("/ui/iterations/1", "/ui/iterations/1")):
            answer = client.post("/ui/login", data={"username": "default", "password": "pw-pw-pw", "next": target},
                                 follow_redirects=False)
            assert answer.status_code == 303 and answer.headers["location"] == expected, target
            cookie = answer.headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
        wrong = client.post("/ui/login", data={"username": "default", "password": "nope"}, follow_redirects=False)
        assert wrong.status_code == 401 and "Wrong username or password" in wrong.text


def test_diary_user_command_on_a_file(tmp_path):
    db = tmp_path / "users.db"
    tracker = LocalTracker(db)
    tracker.create_project("Fraud detection")
    tracker.close()

    def diary(*args, password=None):
        return subprocess.run([sys.executable, "-m", "diary_integrations.cli", "user", *args, "--uri", str(db)],
                              input=password, capture_output=True, text=True, timeout=120, cwd=tmp_path)

    assert diary("add", "ada", "--admin", password="ada-pw\n").returncode == 0
    assert diary("grant", "ada", "Fraud detection", "--create").returncode == 0
    assert diary("passwd", "default", password="a-new-admin-pw\n").returncode == 0
    listed = diary("list").stdout
    assert "ada\tadmin" in listed and "default\tadmin" in listed
    tracker = LocalTracker(db)
    try:
        ada = tracker.get_user("ada")
        assert tracker.authenticate("ada", "ada-pw") is not None
        assert tracker.authenticate("default", "a-new-admin-pw") is not None and not tracker.has_default_password()
        permission = tracker.get_user_permission(ada.id, 1)
        assert permission.read_permission and permission.create_permission and not permission.delete_permission
    finally:
        tracker.close()
    assert diary("remove", "ada").returncode == 0
    missing = diary("remove", "ada")
    assert missing.returncode == 1 and "no user 'ada'" in missing.stderr
