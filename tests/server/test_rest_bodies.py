"""REST bodies refuse fields they do not know (a 422 naming them, nothing written), and where a status is
written both `status` and DearDiary's `status_id` are taken."""

from __future__ import annotations

import httpx
import pytest

from diary_integrations import ExperimentStatus, IterationStatus, RemoteTracker


@pytest.fixture
def api(server_url):
    with httpx.Client(base_url=server_url, timeout=60) as client:
        yield client


@pytest.fixture
def ids(server_url):
    tracker = RemoteTracker(server_url)
    project_id, _ = tracker.create_project("Bodies")
    experiment_id, _ = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "E")
    iteration_id, _ = tracker.create_iteration(experiment_id, snapshot=False)
    yield tracker, project_id, experiment_id, iteration_id
    tracker.close()


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("PATCH", "/iteration/{i}", {"notes": "x", "stauts": 3}, "stauts"),
        ("POST", "/experiment/project/{p}", {"name": "n", "colour": "red"}, "colour"),
        ("PATCH", "/experiment/{e}", {"name": "m", "owner": 1}, "owner"),
        ("POST", "/parameter/iteration/{i}", {"key": "k", "value": "v", "type": "str"}, "type"),
        ("POST", "/project/", {"name": "other", "public": True}, "public"),
        ("POST", "/model/project/{p}", {"name": "m", "flavor": "torch"}, "flavor"),
        ("POST", "/iteration/{i}/end", {"status_id": 2, "reason": "done"}, "reason"),
    ],
)
def test_unknown_fields_are_a_422_naming_them_and_write_nothing(api, ids, method, path, body, field):
    tracker, project_id, experiment_id, iteration_id = ids
    url = path.format(i=iteration_id, p=project_id, e=experiment_id)
    answer = api.request(method, url, json=body)
    assert answer.status_code == 422, answer.text
    payload = answer.json()
    assert payload["code"] == "INVALID_PAYLOAD" and payload["field"] == field and field in payload["message"]
    it = tracker.get_iteration(iteration_id)
    assert it.notes == "" and it.status is IterationStatus.RUNNING
    assert tracker.get_experiment(experiment_id).name == "E" and tracker.get_parameters(iteration_id) == []
    assert tracker.get_models(project_id) == [] and len(tracker.get_projects()) == 1


def test_status_and_status_id_both_write_a_status(api, ids):
    tracker, project_id, experiment_id, iteration_id = ids
    assert api.patch(f"/iteration/{iteration_id}", json={"status": 3}).status_code == 200
    assert tracker.get_iteration(iteration_id).status is IterationStatus.FAILED
    assert api.patch(f"/iteration/{iteration_id}", json={"status_id": "KILLED"}).status_code == 200
    assert tracker.get_iteration(iteration_id).status is IterationStatus.KILLED
    disagree = api.patch(f"/iteration/{iteration_id}", json={"status": 2, "status_id": 3})
    assert disagree.status_code == 422 and "disagree" in disagree.json()["message"]
    assert tracker.get_iteration(iteration_id).status is IterationStatus.KILLED
    running, _ = tracker.create_iteration(experiment_id, snapshot=False)
    assert api.post(f"/iteration/{running}/end", json={"status": "FAILED"}).status_code == 200
    assert tracker.get_iteration(running).status is IterationStatus.FAILED
    assert api.patch(f"/experiment/{experiment_id}", json={"status": "STOPPED"}).status_code == 200
    assert tracker.get_experiment(experiment_id).status is ExperimentStatus.STOPPED


def test_snapshot_route_serves_the_environment_with_its_requirements(api, ids):
    tracker, _, experiment_id, _ = ids
    iteration_id, _ = tracker.create_iteration(experiment_id, snapshot=True)
    snapshot = api.get(f"/iteration/{iteration_id}/snapshot").json()
    env = tracker.get_environment(iteration_id)
    assert snapshot["git_sha"] == env.git_sha and snapshot["packages"] == env.packages
    assert snapshot["requirements"].splitlines()[1:] == [line for line in env.packages.splitlines() if line.strip()]
    missing = api.get("/iteration/999999/snapshot")
    assert missing.status_code == 404 and missing.json()["code"] == "NOT_FOUND"
