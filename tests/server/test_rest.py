"""REST conventions of the live server (auth off): the error envelope, pages, non-finite floats, bad
input that must be a 4xx, settings, and the client's pickling, retries and error mapping."""

from __future__ import annotations

import math
import pickle
import socket
import subprocess
import sys

import httpx
import pytest

from diary_integrations import (
    Conflict,
    ExperimentStatus,
    NotFound,
    RemoteTracker,
    TransportError,
    Unprocessable,
    connect,
)
from diary_integrations.server import ServerSettings


@pytest.fixture
def api(server_url):
    with httpx.Client(base_url=server_url) as client:
        yield client


@pytest.fixture
def remote(server_url):
    tracker = connect(server_url)
    yield tracker
    tracker.close()


@pytest.fixture
def iteration_id(remote):
    project_id, _ = remote.create_project("P")
    experiment_id, _ = remote.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "E")
    return remote.create_iteration(experiment_id, snapshot=False).id


def test_health_and_openapi(api):
    health = api.get("/health").json()
    assert health["app_name"] == "diary-integrations" and health["auth"] is False
    paths = api.get("/openapi.json").json()["paths"]
    for path in ("/project/", "/experiment/project/{project_id}", "/iteration/experiment/{experiment_id}",
                 "/iteration/{iteration_id}/children", "/metric/iteration/{iteration_id}/batch",
                 "/resource/experiment/{experiment_id}", "/tag/{target}/{target_id}", "/user/{user_id}",
                 "/userpermission/user/{user_id}/project/{project_id}", "/auth"):
        assert path in paths, path


def test_error_envelope_and_statuses(api, iteration_id):
    missing = api.get("/iteration/999999")
    assert missing.status_code == 404 and missing.json() == {"code": "NOT_FOUND", "message": "Iteration not found"}
    assert api.get("/no/such/route").json()["code"] == "NOT_FOUND"
    bad_parent = api.post("/iteration/experiment/1", params={"parent_iteration_id": "notanint"})
    assert bad_parent.status_code == 422 and bad_parent.json()["code"] == "INVALID_PAYLOAD"
    assert "parent_iteration_id" in bad_parent.json()["message"]
    rule = api.post("/experiment/project/999999", json={"name": "E"})
    assert rule.status_code == 422 and rule.json()["field"] == "project_id"
    api.post(f"/parameter/iteration/{iteration_id}", json={"key": "lr", "value": 0.001})
    duplicate = api.post(f"/parameter/iteration/{iteration_id}", json={"key": "lr", "value": 1})
    assert duplicate.status_code == 409 and duplicate.json()["code"] == "CONFLICT"
    assert api.get(f"/parameter/iteration/{iteration_id}").json()["data"][0]["value"] == "0.001"


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/project/", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
        ("POST", "/project/", {"json": {"name": 12}}),
        ("POST", "/project/", {"json": {"name": "x" * 100_000}}),
        ("POST", "/project/", {"json": {"name": "nul\x00byte"}}),
        ("POST", "/metric/iteration/{it}/batch", {"content": b"{not json"}),
        ("POST", "/metric/iteration/{it}/batch", {"json": {"points": [["loss", "high", 0]]}}),
        ("POST", "/metric/iteration/{it}/batch", {"content": b'{"points": [["loss", 1e999, 0]]}'}),
        ("POST", "/metric/iteration/{it}/batch", {"json": {"points": [[["unhashable"], 1.0, 0]]}}),
        ("POST", "/metric/iteration/{it}/batch", {"json": {"metrics": [{"key": "a", "value": 1}], "step": -1}}),
        ("POST", "/metric/iteration/{it}", {"json": {"key": "loss", "value": 1.0, "recorded_at": 1e17}}),
        ("PATCH", "/iteration/{it}", {"json": {"end_date": "yesterday"}}),
        ("GET", "/iteration/99999999999999999999999", {}),
        ("GET", "/project/", {"params": {"limit": -1}}),
        ("POST", "/tag/model/1", {"json": {"value": "x"}}),
    ],
)
def test_bad_input_is_422_and_writes_nothing(api, iteration_id, method, path, kwargs):
    before = (api.get("/project/").json()["total"], api.get(f"/metric/iteration/{iteration_id}").json()["total"])
    response = api.request(method, path.format(it=iteration_id), **kwargs)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "INVALID_PAYLOAD" and response.json()["message"]
    after = (api.get("/project/").json()["total"], api.get(f"/metric/iteration/{iteration_id}").json()["total"])
    assert after == before


def test_non_finite_floats_travel_as_strings(api, remote, iteration_id):
    response = api.post(f"/metric/iteration/{iteration_id}/batch",
                        json={"points": [["loss", "NaN", 0], ["loss", "Infinity", 1], ["loss", "-Infinity", 2]]})
    assert response.status_code == 201 and response.json() == {"count": 3}
    values = [m["value"] for m in api.get(f"/metric/iteration/{iteration_id}").json()["data"]]
    assert values == ["NaN", "Infinity", "-Infinity"]
    got = [m.value for m in remote.get_metrics(iteration_id)]
    assert math.isnan(got[0]) and got[1:] == [math.inf, -math.inf]
    assert remote.get_latest_metrics([iteration_id]) == {iteration_id: {"loss": -math.inf}}  # step 2 wins


def test_pages_are_capped_and_walked(api, remote, iteration_id):
    remote.log_metric_points(iteration_id, [("loss", float(s), s) for s in range(12_345)])
    page = api.get(f"/metric/iteration/{iteration_id}", params={"limit": 50_000, "offset": 10}).json()
    assert (page["limit"], page["offset"], page["total"], len(page["data"])) == (10_000, 10, 12_345, 10_000)
    assert [m.step for m in remote.get_metrics(iteration_id)] == list(range(12_345))  # two pages, walked
    assert [m.step for m in remote.get_metrics(iteration_id, limit=3, offset=12_000)] == [12_000, 12_001, 12_002]
    projects = api.get("/project/").json()
    assert set(projects) == {"data", "total", "limit", "offset"} and projects["limit"] == 100


def test_client_errors_and_missing(remote, iteration_id):
    assert remote.get_project(999_999) is None and remote.get_user("nobody") is None
    assert remote.get_resource_data(999_999) is None and remote.get_environment(iteration_id) is None
    assert remote.delete_iteration(999_999) is False
    with pytest.raises(Conflict):
        remote.create_user("default", "pw")
    with pytest.raises(Unprocessable, match="iteration_id must be a positive integer"):
        remote.get_iteration("1/../../user")  # checked before it can become a path
    with pytest.raises(NotFound):
        remote._call("GET", "/nowhere")


def test_remote_tracker_pickles_and_reconnects(server_url, remote, iteration_id):
    remote.create_metric(iteration_id, "loss", 0.5)
    clone = pickle.loads(pickle.dumps(remote))
    assert clone.url == server_url and clone._client is None  # no connection until first use
    assert [m.value for m in clone.get_metrics(iteration_id)] == [0.5]
    secured = pickle.loads(pickle.dumps(RemoteTracker(server_url, username="default", password="default")))
    assert secured.whoami().username == "default" and secured.token


def test_unreachable_server_is_a_transport_error_after_retries():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    tracker = RemoteTracker(f"http://127.0.0.1:{port}", retries=2)
    with pytest.raises(TransportError, match="after 3 attempts"):
        tracker.get_projects()


def test_calls_are_retried_until_the_server_comes_up(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tracker = RemoteTracker(f"http://127.0.0.1:{port}", retries=8)
    server = None
    try:
        # The server starts only now; the client's first call meets a refused connection and retries.
        server = subprocess.Popen(
            [sys.executable, "-m", "diary_integrations.cli", "server", "--port", str(port), "--db",
             str(tmp_path / "late.db"), "--workers", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
        )
        project_id, _ = tracker.create_project("late")  # a POST: safe to retry, nothing was sent
        assert [p.id for p in tracker.get_projects()] == [project_id]
    finally:
        tracker.close()
        if server is not None:
            server.terminate()
            server.wait(timeout=30)


def test_settings_from_environment_and_dotenv(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("DIARY_PORT=9100\nDIARY_CORS_ORIGINS=http://a.example, http://b.example\n")
    monkeypatch.setenv("DIARY_DATABASE_URL", "sqlite:///from-env.db")
    settings = ServerSettings()
    assert settings.port == 9100 and settings.database_url == "sqlite:///from-env.db"
    assert settings.cors_origins == ["http://a.example", "http://b.example"] and not settings.enable_auth
    monkeypatch.setenv("DIARY_PORT", "not-a-port")
    with pytest.raises(ValueError, match="port"):
        ServerSettings()


def test_batched_reads_are_bounded(api, remote, iteration_id):
    remote.log_metric_points(iteration_id, [("loss", math.nan, 0), ("loss", 2.0, 1)])
    remote.create_parameter(iteration_id, "lr", 0.1)
    body = {"iteration_ids": [iteration_id], "key": "loss", "max_points": 10}
    assert api.post("/metric/series", json=body).json() == {str(iteration_id): [[0, "NaN"], [1, 2.0]]}
    assert api.post("/parameter/values", json={"iteration_ids": [iteration_id]}).json() == {
        str(iteration_id): {"lr": "0.1"}
    }
    too_many = list(range(1, 1002))
    for path, payload in [
        ("/parameter/values", {"iteration_ids": too_many}),
        ("/metric/series", {**body, "iteration_ids": too_many}),
        ("/metric/series", {**body, "iteration_ids": [1, 2], "max_points": 600_000}),  # over the budget
        ("/metric/series", {**body, "max_points": 1}),
    ]:
        response = api.post(path, json=payload)
        assert response.status_code == 422, (path, payload, response.text)
    over = api.post("/metric/series", json={**body, "iteration_ids": [1, 2], "max_points": 600_000}).json()
    assert over["field"] == "max_points"
    # Without max_points, the whole series (a frame's history), as long as they hold at most the budget.
    whole = api.post("/metric/series", json={"iteration_ids": [iteration_id, 999_999], "key": "loss"})
    assert whole.json() == {str(iteration_id): [[0, "NaN"], [1, 2.0]], "999999": []}
    # One id may ask for any number of points: it is a single series.
    assert api.post("/metric/series", json={**body, "max_points": 10**7}).status_code == 200


def test_a_servers_client_never_imports_sqlalchemy(server_url):
    # A training script on a tracking server pays for httpx, not for SQLAlchemy (~0.15-0.25 s of CPU in
    # a process that already holds torch): URI checks and idempotency keys stay off the database code.
    probe = (
        "import sys; from diary_integrations import connect; "
        f"t = connect({server_url!r}); p, _ = t.create_project('no-sqlalchemy'); "
        "e, _ = t.create_experiment(p, 1, 'e'); i, _ = t.create_iteration(e); t.log_metric_points(i, [('m', 1.0, 0)]); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy')[:3])"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
