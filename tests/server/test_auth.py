"""Auth on a real server process with DIARY_ENABLE_AUTH: tokens, admin-only routes, same-user rules and
per-project permissions. Every refusal is checked to have the right status and to change nothing."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import jwt
import pytest
from server_harness import start_cli_server

from diary_integrations import (
    AuthError,
    DiaryError,
    ExperimentStatus,
    IterationEnding,
    IterationStatus,
    NewIteration,
    PermissionDenied,
    RemoteTracker,
)
from diary_integrations.server import ServerSettings, create_app

SECRET = "a-test-secret-that-is-long-enough-for-hs256"
OTHER_SECRET = "another-secret-that-is-long-enough-too"
ADMIN_PASSWORD = "an-admin-password-for-tests"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("auth-server")
    live = start_cli_server(
        workdir, f"sqlite:///{workdir / 'auth.db'}", env={"DIARY_ENABLE_AUTH": "true", "DIARY_JWT_SECRET": SECRET,
                              "DIARY_ADMIN_PASSWORD": ADMIN_PASSWORD}
    )
    yield live
    live.stop()


@pytest.fixture(scope="module")
def admin(server):
    tracker = RemoteTracker(server.url, username="default", password=ADMIN_PASSWORD)
    yield tracker
    tracker.close()


@pytest.fixture(scope="module")
def world(server, admin):
    """Two non-admin users and a project that only the admin owns."""
    ada_id, _ = admin.create_user("ada", "ada-pw", first_name="Ada")
    bob_id, _ = admin.create_user("bob", "bob-pw")
    project_id, _ = admin.create_project("Secret project")
    experiment_id, _ = admin.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "E")
    return {"ada": ada_id, "bob": bob_id, "project": project_id, "experiment": experiment_id}


def _token(server, username, password):
    response = httpx.post(f"{server.url}/auth", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()


def _get(server, path, token=None, header=None):
    headers = {"authorization": header if header is not None else f"Bearer {token}"} if (token or header) else {}
    return httpx.get(server.url + path, headers=headers)


def test_refuses_to_start_with_auth_on_and_the_default_secret(tmp_path):
    with pytest.raises(ValueError, match="DIARY_JWT_SECRET"):
        create_app(ServerSettings(enable_auth=True, database_url=f"sqlite:///{tmp_path / 'x.db'}"))
    done = subprocess.run(
        [sys.executable, "-m", "diary_integrations.cli", "server", "--port", "0", "--db", str(tmp_path / "x.db")],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={"DIARY_ENABLE_AUTH": "1", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2 and "DIARY_JWT_SECRET" in done.stderr
    assert "listening" not in done.stdout


def test_login_wrong_password_and_unknown_user(server, world):
    for body in ({"username": "ada", "password": "wrong"}, {"username": "nobody", "password": "x"}):
        response = httpx.post(f"{server.url}/auth", json=body)
        assert response.status_code == 401
        assert response.json() == {"code": "INVALID_CREDENTIALS", "message": "Invalid username or password"}
    with pytest.raises(AuthError, match="Invalid username or password"):
        RemoteTracker(server.url, username="ada", password="wrong").get_projects()


def test_login_gives_a_24h_token(server, world):
    before = int(time.time())
    answer = _token(server, "ada", "ada-pw")
    assert answer["token_type"] == "Bearer" and answer["user"]["username"] == "ada"
    assert "password" not in str(answer["user"]) and "hash" not in str(answer["user"])
    assert before + 24 * 3600 <= answer["expires_at"] <= int(time.time()) + 24 * 3600
    me = _get(server, "/auth/me", answer["access_token"])
    assert me.status_code == 200 and me.json()["username"] == "ada" and me.json()["is_admin"] is False
    refreshed = httpx.post(f"{server.url}/auth/refresh", headers={"authorization": f"Bearer {answer['access_token']}"})
    assert refreshed.status_code == 200 and refreshed.json()["expires_at"] >= answer["expires_at"]


def _forge(claims, secret=SECRET):
    return jwt.encode(claims, secret, algorithm="HS256")


def test_bad_tokens_are_401(server, world):
    now = int(time.time())
    good = _token(server, "ada", "ada-pw")["access_token"]
    header, payload, signature = good.split(".")
    admin_payload = jwt.utils.base64url_encode(
        f'{{"sub":"default","id":1,"gen":1,"exp":{now + 3600}}}'.encode()
    ).decode()
    cases = {
        "TOKEN_MISSING": None,
        "TOKEN_INVALID": ["Bearer garbage", "Bearer a.b.c", f"Basic {good}", "Bearer",
                          f"Bearer {header}.{admin_payload}.{signature}",  # tampered: claims to be the admin
                          "Bearer " + _forge({"sub": "ada", "id": world["ada"], "gen": 0, "exp": now + 60},
                                             OTHER_SECRET)],
        "TOKEN_EXPIRED": [f"Bearer {_forge({'sub': 'ada', 'id': world['ada'], 'gen': 0, 'exp': now - 10})}"],
        "TOKEN_PAYLOAD_INVALID": [f"Bearer {_forge({'sub': 'ada', 'gen': 0, 'exp': now + 60})}",
                                  f"Bearer {_forge({'sub': 'ada', 'id': 'one', 'gen': 0, 'exp': now + 60})}"],
        "USER_NOT_FOUND": [f"Bearer {_forge({'sub': 'ghost', 'id': 424242, 'gen': 0, 'exp': now + 60})}"],
    }
    for code, headers in cases.items():
        for header_value in headers or [None]:
            headers = {"authorization": header_value} if header_value else {}
            response = httpx.get(f"{server.url}/project/", headers=headers)
            assert response.status_code == 401, (header_value, response.text)
            assert response.json()["code"] == code, (header_value, response.text)
    # Writes with a bad token change nothing.
    response = httpx.post(f"{server.url}/project/", json={"name": "forged"},
                          headers={"authorization": f"Bearer {header}.{admin_payload}.{signature}"})
    assert response.status_code == 401
    with pytest.raises(AuthError):
        RemoteTracker(server.url, token="garbage").create_project("forged too")
    assert httpx.get(f"{server.url}/health").status_code == 200  # no token needed


def test_expired_token_is_renewed_with_credentials(server, world, admin):
    now = int(time.time())
    client = RemoteTracker(server.url, username="ada", password="ada-pw",
                           token=_forge({"sub": "ada", "id": world["ada"], "gen": 0, "exp": now - 10}))
    assert client.whoami().username == "ada"  # logged in again on TOKEN_EXPIRED
    only_token = RemoteTracker(server.url, token=_forge({"sub": "ada", "id": world["ada"], "gen": 0, "exp": now - 10}))
    with pytest.raises(AuthError) as err:
        only_token.whoami()
    assert err.value.code == "TOKEN_EXPIRED"


def test_non_admin_cannot_promote_itself(server, world, admin):
    bob = RemoteTracker(server.url, username="bob", password="bob-pw")
    with pytest.raises(PermissionDenied, match="Administrator"):
        bob.update_user(world["bob"], is_admin=True)
    with pytest.raises(PermissionDenied):
        bob.update_user(world["bob"], first_name="Bobby", is_admin=False)
    assert admin.get_user(world["bob"]).is_admin is False
    assert admin.get_user(world["bob"]).first_name == ""  # the refused call wrote nothing at all
    with pytest.raises(PermissionDenied):
        bob.create_user("bob2", "pw", is_admin=True)
    assert admin.get_user("bob2") is None
    assert bob.update_user(world["bob"], first_name="Bobby")  # its own record, without is_admin: fine
    assert admin.get_user(world["bob"]).first_name == "Bobby"
    with pytest.raises(PermissionDenied):
        bob.update_user(world["ada"], first_name="Mallory")  # someone else's record
    with pytest.raises(PermissionDenied):
        bob.get_user(world["ada"])
    assert admin.get_user(world["ada"]).first_name == "Ada"
    assert bob.get_user("bob").id == world["bob"]
    assert admin.update_user(world["ada"], is_admin=True) and admin.get_user(world["ada"]).is_admin
    admin.update_user(world["ada"], is_admin=False)


def test_project_permissions(server, world, admin):
    bob = RemoteTracker(server.url, username="bob", password="bob-pw")
    project, experiment = world["project"], world["experiment"]
    iteration, _ = admin.create_iteration(experiment)
    before = (len(admin.get_experiments(project)), len(admin.get_iterations(experiment)))
    # What bob may not read is, to him, exactly what does not exist (issue 25): no 403 that would tell
    # him it is there, or which project an iteration belongs to.
    assert bob.get_project(project) is None and bob.get_experiment(experiment) is None
    assert bob.get_iteration(iteration) is None
    hidden = [
        lambda: bob.get_experiments(project),
        lambda: bob.create_experiment(project, 1, "sneaky"),
        lambda: bob.create_iteration(experiment),
        lambda: bob.create_iterations(experiment, [NewIteration("sneaky")]),
        lambda: bob.end_iteration(iteration, points=[("loss", 1.0, 0)]),
        lambda: bob.end_iterations([IterationEnding(iteration, IterationStatus.KILLED)]),
        lambda: bob.create_metric(iteration, "loss", 1.0),
        lambda: bob.delete_project(project),
    ]
    missing = [
        lambda: bob.get_experiments(999_999),
        lambda: bob.create_experiment(999_999, 1, "sneaky"),
        lambda: bob.create_iteration(999_998),
        lambda: bob.create_iterations(999_998, [NewIteration("sneaky")]),
        lambda: bob.end_iteration(999_997, points=[("loss", 1.0, 0)]),
        lambda: bob.end_iterations([IterationEnding(999_997, IterationStatus.KILLED)]),
        lambda: bob.create_metric(999_997, "loss", 1.0),
        lambda: bob.delete_project(999_999),
    ]
    for call, twin in zip(hidden, missing, strict=True):
        answers = []
        for attempt in (call, twin):
            try:
                answers.append(("returned", type(attempt()).__name__))
            except DiaryError as exc:
                answers.append((type(exc).__name__, exc.code))
        assert answers[0] == answers[1] and answers[0][0] != "PermissionDenied", answers
    for call in (lambda: bob.create_project("mine"), lambda: bob.get_projects(user_id=world["ada"])):
        with pytest.raises(PermissionDenied):  # admin-only, whatever exists
            call()
    assert bob.get_projects() == []
    assert (len(admin.get_experiments(project)), len(admin.get_iterations(experiment))) == before
    assert admin.get_metrics(iteration) == [] and admin.get_project(project) is not None
    assert admin.get_iteration(iteration).status is IterationStatus.RUNNING
    assert bob.get_experiment(999_999) is None  # a missing entity is a 404 before it is a 403

    permission, _ = admin.create_user_permission(world["bob"], project)  # read only
    assert [p.id for p in bob.get_projects()] == [project]
    assert bob.get_project(project).name == "Secret project"
    assert bob.get_iteration(iteration).id == iteration
    with pytest.raises(PermissionDenied, match="create permission"):
        bob.create_experiment(project, 1, "still no")
    admin.update_user_permission(permission, create=True)
    bob_exp, _ = bob.create_experiment(project, 1, "allowed now")
    with pytest.raises(PermissionDenied, match="delete permission"):
        bob.delete_experiment(bob_exp)
    assert admin.get_experiment(bob_exp) is not None
    admin.delete_user_permission(permission)
    assert bob.get_experiment(bob_exp) is None


def test_ending_with_data_takes_create_permission(server, world, admin):
    """Update permission ends an iteration; writing its last parameters or points with the end also takes
    create permission, as their own routes do."""
    carol_id, _ = admin.create_user("carol", "carol-pw")
    carol = RemoteTracker(server.url, username="carol", password="carol-pw")
    permission, _ = admin.create_user_permission(carol_id, world["project"])
    admin.update_user_permission(permission, update=True)  # read and update, no create
    first, second = admin.create_iterations(world["experiment"], [NewIteration("a"), NewIteration("b")])
    with pytest.raises(PermissionDenied, match="create permission"):
        carol.end_iteration(first, points=[("loss", 1.0, 0)])
    with pytest.raises(PermissionDenied, match="create permission"):
        carol.end_iterations([IterationEnding(first), IterationEnding(second, parameters={"lr": 0.1})])
    assert admin.get_iteration(first).status is IterationStatus.RUNNING and admin.get_metrics(first) == []
    assert admin.get_iteration(second).status is IterationStatus.RUNNING and admin.get_parameters(second) == []
    carol.end_iterations([IterationEnding(first), IterationEnding(second, IterationStatus.KILLED, notes="stopped")])
    stopped = admin.get_iteration(second)
    assert stopped.status is IterationStatus.KILLED and stopped.notes == "stopped"
    assert admin.get_iteration(first).status is IterationStatus.SUCCEEDED
