"""The metric batch's fast path (server/fast_batch.py) answers as the route did, on a real server with
auth on (SQLite and PostgreSQL): who may write, what is refused and how, and paths it leaves to the
route. The multi-iteration route (`POST /metric/batch`) takes the same permissions."""

from __future__ import annotations

import httpx
import pytest
from postgres_service import require_postgres
from server_harness import start_cli_server

from diary_integrations import ExperimentStatus, IterationStatus, RemoteTracker
from diary_integrations.tracker.errors import DiaryError

SECRET = "a-test-secret-that-is-long-enough-for-hs256"
ADMIN_PASSWORD = "an-admin-password-for-tests"


@pytest.fixture(params=["sqlite", "postgres"])
def server(request, tmp_path):
    if request.param == "postgres":
        require_postgres()
        database = request.getfixturevalue("postgres_url")
    else:
        database = f"sqlite:///{tmp_path / 'fast.db'}"
    live = start_cli_server(tmp_path, database, env={
        "DIARY_ENABLE_AUTH": "true", "DIARY_JWT_SECRET": SECRET, "DIARY_ADMIN_PASSWORD": ADMIN_PASSWORD})
    yield live
    live.stop()


def _token(url: str, username: str, password: str) -> str:
    answer = httpx.post(f"{url}/auth", json={"username": username, "password": password}, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def test_the_fast_path_answers_as_the_route(server):
    url = server.url
    admin = RemoteTracker(url, username="default", password=ADMIN_PASSWORD, replay_journal=False)
    bob_id, _ = admin.create_user("bob", "bob-pw")
    project_id, _ = admin.create_project("P")
    experiment_id, _ = admin.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "E")
    iteration_id, _ = admin.create_iteration(experiment_id, snapshot=False)
    bob = {"authorization": f"Bearer {_token(url, 'bob', 'bob-pw')}"}
    points = {"points": [["loss", 0.5, 0], ["loss", 0.25, 1]]}
    groups = {"iterations": [{"iteration_id": iteration_id, **points}]}

    def post(path: str, body, headers=None) -> httpx.Response:
        return httpx.post(url + path, json=body, headers=headers or {}, timeout=60)

    single = f"/metric/iteration/{iteration_id}/batch"
    # No token: refused before the body is read; no permission: the iteration does not exist, to bob.
    assert post(single, points).status_code == 401
    for path, body in ((single, points), ("/metric/batch", groups)):
        hidden = post(path, body, bob)
        assert hidden.status_code == 404 and hidden.json()["code"] == "NOT_FOUND", hidden.text
    permission, _ = admin.create_user_permission(bob_id, project_id)  # read only
    for path, body in ((single, points), ("/metric/batch", groups)):
        denied = post(path, body, bob)
        assert denied.status_code == 403 and "create permission" in denied.json()["message"], denied.text
    assert admin.get_metrics(iteration_id) == []
    admin.update_user_permission(permission, create=True)
    assert post(single, points, bob).json() == {"count": 2}
    assert admin.get_metrics(iteration_id, key="loss")[1].value == 0.25
    # Bad input, named as before; nothing written.
    bad = httpx.post(url + single, content=b"{not json", headers={**bob, "content-type": "application/json"})
    assert bad.status_code == 422 and bad.json()["field"] == "body"
    wrong = post(single, {"points": [["loss", "high", 3]]}, bob)
    assert wrong.status_code == 422 and wrong.json()["field"] == "points[0].value", wrong.text
    assert post(single, {"points": []}, bob).json() == {"count": 0}
    # Paths the fast path leaves to the route: an id beyond 64 bits, a missing one.
    assert post("/metric/iteration/99999999999999999999/batch", points, bob).status_code == 422
    assert post("/metric/iteration/0/batch", points, bob).status_code == 422
    assert post("/metric/iteration/987654/batch", points, bob).status_code == 404
    # An ended iteration takes no more points, through either route.
    admin.end_iteration(iteration_id, IterationStatus.SUCCEEDED)
    for path, body in ((single, points), ("/metric/batch", groups)):
        ended = post(path, body, bob)
        assert ended.status_code == 422 and "has ended" in ended.json()["message"], ended.text
    assert len(admin.get_metrics(iteration_id)) == 2
    assert "Traceback" not in server.log.read_text() and "SERVER_ERROR" not in server.log.read_text()
    with pytest.raises(DiaryError):
        RemoteTracker(url, username="bob", password="bob-pw", replay_journal=False).log_metric_points(
            iteration_id, [("loss", 1.0, 9)])
    admin.close()
