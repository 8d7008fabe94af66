"""MLflow's fluent API and MlflowClient against a real `diary server`: nested runs become an iteration
tree, statuses and error text are truthful, metrics and artifacts round-trip, retries write once."""

from __future__ import annotations

import json
import math
from pathlib import Path

import httpx
import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow_helpers import MlflowServer, series

from diary_integrations import IterationStatus


@pytest.mark.parametrize(
    "mlflow_server", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_fluent_api_lands_as_an_iteration_tree(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    experiment_id = mlflow.set_experiment("fluent").experiment_id
    with mlflow.start_run(run_name="driver") as driver:
        mlflow.log_params({"lr": 0.1, "depth": 3})
        for step in range(5):
            mlflow.log_metrics({"loss": 1.0 / (step + 1), "acc": step / 10}, step=step)
        mlflow.set_tag("team", "vision")
        with mlflow.start_run(run_name="fold", nested=True) as fold:
            mlflow.log_metric("loss", 0.7)
            with mlflow.start_run(run_name="epoch", nested=True) as epoch:
                mlflow.log_metric("loss", 0.1, step=3)
        notes = tmp_path / "notes.txt"
        notes.write_text("hello from mlflow")
        mlflow.log_artifact(str(notes), artifact_path="reports")

    diary = mlflow_server.diary
    top, middle, leaf = (diary.get_iteration(int(r.info.run_id)) for r in (driver, fold, epoch))
    assert (top.parent_iteration_id, middle.parent_iteration_id, leaf.parent_iteration_id) == (None, top.id, middle.id)
    assert {top.experiment_id, middle.experiment_id, leaf.experiment_id} == {int(experiment_id)}
    assert (top.name, middle.name, leaf.name) == ("driver", "fold", "epoch")
    assert all(i.status is IterationStatus.SUCCEEDED and i.end_date is not None for i in (top, middle, leaf))
    assert [c.id for c in diary.get_child_iterations(top.id)] == [middle.id]
    assert series(diary, driver.info.run_id, "loss") == [(s, 1.0 / (s + 1)) for s in range(5)]
    assert {p.key: p.value for p in diary.get_parameters(top.id)} == {"lr": "0.1", "depth": "3"}
    project = diary.get_project_by_name("mlflow")
    assert project is not None and diary.get_experiment(int(experiment_id)).project_id == project.id

    client = MlflowClient()
    history = client.get_metric_history(driver.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(s, 1.0 / (s + 1)) for s in range(5)]
    got = client.get_run(epoch.info.run_id)
    assert got.data.tags["mlflow.parentRunId"] == fold.info.run_id
    assert got.info.status == "FINISHED" and got.info.run_name == "epoch"
    assert client.get_run(driver.info.run_id).data.tags["team"] == "vision"

    found = mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string="metrics.loss < 0.5 and attributes.status = 'FINISHED'",
        order_by=["metrics.loss DESC"],
        output_format="list",
    )
    assert [r.info.run_name for r in found] == ["driver", "epoch"]  # latest losses 0.2 and 0.1; fold has 0.7
    assert [
        r.info.run_name
        for r in mlflow.search_runs(
            experiment_ids=[experiment_id], filter_string="params.depth = '3'", output_format="list"
        )
    ] == ["driver"]
    assert [
        r.info.run_name
        for r in mlflow.search_runs(
            experiment_ids=[experiment_id], filter_string="tags.mlflow.runName LIKE 'e%'", output_format="list"
        )
    ] == ["epoch"]

    listed = client.list_artifacts(driver.info.run_id, "reports")
    assert [(f.path, f.is_dir, f.file_size) for f in listed] == [("reports/notes.txt", False, 17)]
    local = mlflow.artifacts.download_artifacts(
        run_id=driver.info.run_id, artifact_path="reports/notes.txt", dst_path=str(tmp_path / "down")
    )
    assert Path(local).read_text() == "hello from mlflow"
    resources = diary.get_resources(int(experiment_id))
    assert [(r.name, r.size_bytes) for r in resources] == [(f"{driver.info.run_id}/artifacts/reports/notes.txt", 17)]


def test_a_failed_run_keeps_its_error_text(mlflow_server: MlflowServer) -> None:
    mlflow.set_experiment("failing")
    with pytest.raises(RuntimeError), mlflow.start_run(run_name="doomed") as run:
        mlflow.log_metric("loss", 1.5)
        mlflow.set_tag("diary.error", "CUDA out of memory at step 7")
        raise RuntimeError("boom")
    iteration = mlflow_server.diary.get_iteration(int(run.info.run_id))
    assert iteration.status is IterationStatus.FAILED
    assert iteration.error_message == "CUDA out of memory at step 7"
    assert MlflowClient().get_run(run.info.run_id).info.status == "FAILED"

    client = MlflowClient()
    other = client.create_run(run.info.experiment_id, tags={"mlflow.note.content": "diverged: loss is NaN"})
    client.set_terminated(other.info.run_id, "FAILED")
    assert mlflow_server.diary.get_iteration(int(other.info.run_id)).error_message == "diverged: loss is NaN"
    client.set_terminated(other.info.run_id, "KILLED")  # the client's later word is the run's status
    assert mlflow_server.diary.get_iteration(int(other.info.run_id)).status is IterationStatus.KILLED


@pytest.mark.parametrize(
    "mlflow_server", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_retried_writes_land_once(mlflow_server: MlflowServer) -> None:
    client = MlflowClient()
    experiment_id = client.create_experiment("retries")
    run = client.create_run(experiment_id)
    run_id = run.info.run_id
    metrics = [Metric("loss", 1.0 / (s + 1), 1_700_000_000_000 + s, s) for s in range(50)]
    metrics.append(Metric("loss", math.nan, 1_700_000_000_100, 50))
    for _ in range(3):  # what the client's retry sends after a lost answer: the same batch again
        client.log_batch(run_id, metrics=metrics, params=[Param("seed", "7")], tags=[RunTag("k", "v")])
    client.log_param(run_id, "seed", "7")  # the same value again is a no-op
    points = series(mlflow_server.diary, run_id, "loss")
    assert len(points) == 51 and points[:2] == [(0, 1.0), (1, 0.5)] and math.isnan(points[-1][1])
    # The same step and value at another time is another point, as in MLflow.
    client.log_metric(run_id, "loss", 1.0, timestamp=1_800_000_000_000, step=0)
    assert len(series(mlflow_server.diary, run_id, "loss")) == 52
    with pytest.raises(MlflowException, match="INVALID_PARAMETER_VALUE"):
        client.log_param(run_id, "seed", "8")
    assert [p.value for p in mlflow_server.diary.get_parameters(int(run_id))] == ["7"]
    client.set_terminated(run_id, "FINISHED")
    client.set_terminated(run_id, "FINISHED")  # a retried ending changes nothing
    assert mlflow_server.diary.get_iteration(int(run_id)).status is IterationStatus.SUCCEEDED
    client.delete_run(run_id)
    client.delete_run(run_id)
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    assert client.search_runs([experiment_id]) == []
    client.restore_run(run_id)
    assert [r.info.run_id for r in client.search_runs([experiment_id])] == [run_id]


def test_experiments_crud_and_search(mlflow_server: MlflowServer) -> None:
    client = MlflowClient()
    first = client.create_experiment("alpha", tags={"owner": "ana"})
    second = client.create_experiment("beta")
    with pytest.raises(MlflowException, match="RESOURCE_ALREADY_EXISTS"):
        client.create_experiment("alpha")
    client.set_experiment_tag(second, "owner", "bo")
    client.rename_experiment(second, "gamma")
    assert client.get_experiment_by_name("gamma").experiment_id == second
    assert client.get_experiment_by_name("beta") is None
    found = client.search_experiments(filter_string="tags.owner = 'ana'")
    assert [e.name for e in found] == ["alpha"]
    client.delete_experiment(first)
    assert client.get_experiment(first).lifecycle_stage == "deleted"
    assert "alpha" not in [e.name for e in client.search_experiments()]
    client.restore_experiment(first)
    assert client.get_experiment(first).lifecycle_stage == "active"
    names = [e.name for e in client.search_experiments(order_by=["name ASC"])]
    assert names == sorted(names) and {"alpha", "gamma"} <= set(names)


def test_log_model_uploads_and_loads(mlflow_server: MlflowServer) -> None:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    mlflow.set_experiment("models")
    model = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(  # cloudpickle: skops would import every estimator (~10 s)
            model, name="clf", pip_requirements=["scikit-learn"], serialization_format="cloudpickle"
        )
    loaded = mlflow.sklearn.load_model(info.model_uri)
    assert loaded.predict(np.array([[3.0]])).tolist() == [1]
    assert MlflowClient().get_logged_model(info.model_id).source_run_id == run.info.run_id
    names = [r.name for r in mlflow_server.diary.get_resources(int(run.info.experiment_id))]
    assert f"models/{info.model_id}/artifacts/MLmodel" in names


def _post(url: str, path: str, body: object) -> httpx.Response:
    return httpx.post(f"{url}/api/2.0/mlflow/{path}", json=body, timeout=30)


BAD_INPUT = [  # (route, body, status, MLflow error code); RUN and EXP are filled in
    ("runs/log-batch", {}, 400, "INVALID_PARAMETER_VALUE"),
    ("runs/log-batch", {"run_id": "999999"}, 404, "RESOURCE_DOES_NOT_EXIST"),
    ("runs/log-batch", {"run_id": "not-a-run"}, 404, "RESOURCE_DOES_NOT_EXIST"),
    ("runs/log-metric", {"run_id": "RUN", "key": "x", "value": "high", "timestamp": 1}, 400, "INVALID_PARAMETER_VALUE"),
    (
        "runs/log-batch",
        {"run_id": "RUN", "metrics": [{"key": "m", "value": 1, "timestamp": 1}] * 1001},
        400,
        "INVALID_PARAMETER_VALUE",
    ),
    (
        "runs/log-batch",
        {"run_id": "RUN", "params": [{"key": f"p{n}", "value": "1"} for n in range(101)]},
        400,
        "INVALID_PARAMETER_VALUE",
    ),
    (
        "runs/log-batch",
        {"run_id": "RUN", "tags": [{"key": f"t{n}", "value": "1"} for n in range(101)]},
        400,
        "INVALID_PARAMETER_VALUE",
    ),
    ("runs/search", {"experiment_ids": ["EXP"], "filter": "metrics.loss <"}, 400, "INVALID_PARAMETER_VALUE"),
    ("runs/search", {"experiment_ids": ["EXP"], "filter": "params.x > 'a'"}, 400, "INVALID_PARAMETER_VALUE"),
    ("runs/search", {"experiment_ids": ["EXP"], "page_token": "%%%"}, 400, "INVALID_PARAMETER_VALUE"),
    ("runs/update", {"run_id": "RUN", "status": "EXPLODED"}, 400, "INVALID_PARAMETER_VALUE"),
    ("runs/log-inputs", {"run_id": "RUN", "datasets": [{"dataset": {"name": "x"}}]}, 400, "INVALID_PARAMETER_VALUE"),
    ("runs/outputs", {"run_id": "RUN", "models": [{"model_id": "m", "step": "x"}]}, 400, "INVALID_PARAMETER_VALUE"),
    ("experiments/create", {"name": 5}, 400, "INVALID_PARAMETER_VALUE"),
    ("experiments/get", {}, 404, "ENDPOINT_NOT_FOUND"),  # a GET route, POSTed
    ("no/such/route", {}, 404, "ENDPOINT_NOT_FOUND"),
]


def test_bad_input_gets_mlflow_errors_and_writes_nothing(mlflow_server: MlflowServer) -> None:
    client = MlflowClient()
    experiment_id = client.create_experiment("bad-input")
    run_id = client.create_run(experiment_id).info.run_id
    for path, body, status, code in BAD_INPUT:
        filled = json.dumps(body).replace('"RUN"', json.dumps(run_id)).replace('"EXP"', json.dumps(experiment_id))
        answer = _post(mlflow_server.url, path, json.loads(filled))
        assert answer.status_code == status, (path, answer.text)
        assert set(answer.json()) == {"error_code", "message"} and answer.json()["error_code"] == code, path
    assert mlflow_server.diary.get_metrics(int(run_id)) == []
    assert mlflow_server.diary.get_parameters(int(run_id)) == []
    assert len(mlflow_server.diary.get_iterations(int(experiment_id))) == 1


def test_malformed_json_is_an_mlflow_error(mlflow_server: MlflowServer) -> None:
    answer = httpx.post(
        f"{mlflow_server.url}/api/2.0/mlflow/runs/create",
        content=b"{not json",
        timeout=30,
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 400 and answer.json()["error_code"] == "MALFORMED_REQUEST"
    answer = httpx.get(
        f"{mlflow_server.url}/ajax-api/2.0/mlflow/experiments/get-by-name",
        params={"experiment_name": "nope"},
        timeout=30,
    )
    assert answer.status_code == 404 and answer.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    answer = httpx.get(f"{mlflow_server.url}/api/2.0/mlflow-artifacts/artifacts/1/../../etc/passwd", timeout=30)
    assert answer.status_code in (400, 404) and "error_code" in answer.json()
