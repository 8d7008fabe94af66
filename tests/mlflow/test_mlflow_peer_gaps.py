"""What MLflow's own REST tests found missing (issue 26), each with a stock MLflow client against a real
`diary server`: datasets, inputs, outputs and model/dataset metric links stored (not accepted and
dropped); MLflow's behaviour where it differed (Default listed, negative steps, a parent run that does
not exist, deleting a missing tag, artifact locations, logged models); MLflow's error texts."""

from __future__ import annotations

import httpx
import pytest
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, LoggedModelInput, LoggedModelOutput
from mlflow.exceptions import MlflowException
from mlflow_helpers import MlflowServer


@pytest.fixture
def client(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    # MLflow's telemetry thread edits os.environ while urllib reads it for proxies (a KeyError seen once).
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    return MlflowClient(mlflow_server.url)


def _dataset(name: str = "train", digest: str = "d1") -> Dataset:
    return Dataset(name=name, digest=digest, source_type="local", source="/data/train.csv", schema='{"a": 1}')


def test_inputs_outputs_and_metric_links_are_stored(client: MlflowClient, mlflow_server: MlflowServer) -> None:
    experiment_id = client.create_experiment("io")
    run_id = client.create_run(experiment_id).info.run_id
    model = client.create_logged_model(experiment_id, name="mlp")
    datasets = [DatasetInput(_dataset(), tags=[InputTag("mlflow.data.context", "training")])]
    client.log_inputs(run_id, datasets, models=[LoggedModelInput(model.model_id)])
    client.log_inputs(run_id, datasets)  # a retry adds nothing
    client.log_outputs(run_id, [LoggedModelOutput(model.model_id, 3)])
    client.log_metric(run_id, "acc", 0.5, timestamp=1000, step=1, model_id=model.model_id,
                      dataset_name="train", dataset_digest="d1")

    run = client.get_run(run_id)
    (used,) = run.inputs.dataset_inputs
    assert (used.dataset.name, used.dataset.digest, used.dataset.source, used.dataset.schema) == (
        "train", "d1", "/data/train.csv", '{"a": 1}')
    assert [(t.key, t.value) for t in used.tags] == [("mlflow.data.context", "training")]
    assert [m.model_id for m in run.inputs.model_inputs] == [model.model_id]
    assert run.outputs.model_outputs == [LoggedModelOutput(model.model_id, 3)]
    (point,) = client.get_logged_model(model.model_id).metrics
    assert (point.key, point.value, point.step, point.timestamp, point.run_id) == ("acc", 0.5, 1, 1000, run_id)
    assert (point.model_id, point.dataset_name, point.dataset_digest) == (model.model_id, "train", "d1")
    # The point is also an ordinary metric point of the run, as diary shows it.
    assert [(m.step, m.value) for m in mlflow_server.diary.get_metrics(int(run_id), key="acc")] == [(1, 0.5)]
    page = httpx.get(f"{mlflow_server.url}/ui/iterations/{run_id}").text  # the iteration page shows them
    assert "Datasets and models" in page and "/data/train.csv" in page and model.model_id in page
    found = client.search_logged_models([experiment_id], datasets=[{"dataset_name": "train"}])
    assert [m.model_id for m in found] == [model.model_id]
    assert not client.search_logged_models([experiment_id], datasets=[{"dataset_name": "other"}])


def test_a_dataset_is_shared_by_the_runs_of_an_experiment(client: MlflowClient) -> None:
    experiment_id = client.create_experiment("shared")
    runs = [client.create_run(experiment_id).info.run_id for _ in range(2)]
    for run_id in runs:
        client.log_inputs(run_id, [DatasetInput(_dataset())])
    for run_id in runs:
        assert [d.dataset.digest for d in client.get_run(run_id).inputs.dataset_inputs] == ["d1"]


def test_log_inputs_refuses_a_dataset_without_its_fields(mlflow_server: MlflowServer, client: MlflowClient) -> None:
    run_id = client.create_run(client.create_experiment("bad")).info.run_id
    answer = httpx.post(f"{mlflow_server.url}/api/2.0/mlflow/runs/log-inputs",
                        json={"run_id": run_id, "datasets": [{"dataset": {"name": "x"}}]})
    assert answer.status_code == 400
    assert "datasets[0].dataset.digest" in answer.json()["message"]
    assert not client.get_run(run_id).inputs.dataset_inputs
    answer = httpx.post(f"{mlflow_server.url}/api/2.0/mlflow/runs/log-inputs", json={"datasets": []})
    assert "Missing value for required parameter 'run_id'" in answer.json()["message"]


def test_default_experiment_is_listed_first_use_or_not(client: MlflowClient) -> None:
    assert [e.name for e in client.search_experiments()] == ["Default"]
    client.create_experiment("later")
    assert [e.name for e in client.search_experiments()] == ["later", "Default"]


def test_negative_steps_are_kept(client: MlflowClient, mlflow_server: MlflowServer) -> None:
    run_id = client.create_run(client.create_experiment("neg")).info.run_id
    client.log_metric(run_id, "loss", 1.0, step=-2)
    client.log_metric(run_id, "loss", 0.5, step=3)
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "loss")] == [(-2, 1.0), (3, 0.5)]


def test_a_parent_run_that_does_not_exist_stays_a_tag(client: MlflowClient, mlflow_server: MlflowServer) -> None:
    experiment_id = client.create_experiment("parents")
    run = client.create_run(experiment_id, tags={"mlflow.parentRunId": "my-parent-id"})
    assert client.get_run(run.info.run_id).data.tags["mlflow.parentRunId"] == "my-parent-id"
    assert mlflow_server.diary.get_iteration(int(run.info.run_id)).parent_iteration_id is None
    parent = client.create_run(experiment_id)
    child = client.create_run(experiment_id, tags={"mlflow.parentRunId": parent.info.run_id})
    assert mlflow_server.diary.get_iteration(int(child.info.run_id)).parent_iteration_id == int(parent.info.run_id)


def test_deleting_a_missing_tag_raises_as_in_mlflow(client: MlflowClient) -> None:
    run_id = client.create_run(client.create_experiment("tags")).info.run_id
    client.set_tag(run_id, "k", "v")
    client.delete_tag(run_id, "k")
    with pytest.raises(MlflowException, match=f"No tag with name: k in run with id {run_id}"):
        client.delete_tag(run_id, "k")
    model = client.create_logged_model(client.create_experiment("model tags"))
    with pytest.raises(MlflowException, match="No tag with key"):
        client.delete_logged_model_tag(model.model_id, "absent")


def test_a_deleted_runs_tags_stay_until_it_is_restored(client: MlflowClient) -> None:
    run_id = client.create_run(client.create_experiment("deleted")).info.run_id
    client.set_tag(run_id, "k", "v")
    client.delete_run(run_id)
    for write in (lambda: client.set_tag(run_id, "k", "w"), lambda: client.delete_tag(run_id, "k")):
        with pytest.raises(MlflowException, match=f"The run {run_id} must be in the 'active' state"):
            write()
    client.restore_run(run_id)
    assert client.get_run(run_id).data.tags["k"] == "v"
    client.delete_tag(run_id, "k")
    assert "k" not in client.get_run(run_id).data.tags


def test_artifact_location_is_honoured(client: MlflowClient, tmp_path) -> None:
    location = (tmp_path / "artifacts").as_uri()
    experiment_id = client.create_experiment("located", artifact_location=location)
    assert client.get_experiment(experiment_id).artifact_location == location
    run = client.create_run(experiment_id)
    assert run.info.artifact_uri == f"{location}/{run.info.run_id}/artifacts"
    # The bytes of a file: location are written by the client process's own artifact repository, not by
    # the server: what the server owes is the run's artifact_uri under the requested location (above).


def test_logged_models_unknown_source_run_and_name_filter(client: MlflowClient) -> None:
    experiment_id = client.create_experiment("models")
    first = client.create_logged_model(experiment_id, name="first", source_run_id="123abc")
    assert client.get_logged_model(first.model_id).source_run_id == "123abc"
    client.create_logged_model(experiment_id, name="second")
    found = client.search_logged_models([experiment_id], filter_string="name = 'first'")
    assert [m.name for m in found] == ["first"]
    # Unnamed models get a generated name each, as MLflow names them: a name filter finds the one.
    unnamed = [client.create_logged_model(experiment_id) for _ in range(3)]
    assert all(m.name and m.name not in ("first", "second", "model") for m in unnamed)
    found = client.search_logged_models([experiment_id], filter_string=f"name = '{unnamed[0].name}'")
    assert unnamed[0].model_id in [m.model_id for m in found]


@pytest.mark.parametrize(("body", "text"), [
    ({"run_id": 31, "key": "m", "value": 1, "timestamp": 1, "step": 1},
     "Invalid value 31 for parameter 'run_id' supplied"),
    ({"key": "m", "value": 1, "timestamp": "foo", "step": 1},
     "Invalid value \"foo\" for parameter 'timestamp' supplied"),
])
def test_errors_in_mlflows_words(mlflow_server: MlflowServer, client: MlflowClient, body: dict, text: str) -> None:
    body.setdefault("run_id", client.create_run(client.create_experiment("errors")).info.run_id)
    answer = httpx.post(f"{mlflow_server.url}/api/2.0/mlflow/runs/log-metric", json=body)
    assert answer.status_code == 400 and text in answer.json()["message"]


def test_the_uis_ajax_routes(mlflow_server: MlflowServer, client: MlflowClient) -> None:
    experiment_id = client.create_experiment("ajax")
    runs = [client.create_run(experiment_id).info.run_id for _ in range(2)]
    for n, run_id in enumerate(runs):
        for step in range(10):
            client.log_metric(run_id, "loss", step + n, timestamp=1000 + step, step=step)
    ajax = f"{mlflow_server.url}/ajax-api/2.0/mlflow"
    bulk = httpx.get(f"{ajax}/metrics/get-history-bulk", params={"run_id": runs, "metric_key": "loss"}).json()
    assert len(bulk["metrics"]) == 20
    assert bulk["metrics"][0] == {"key": "loss", "value": 0, "timestamp": 1000, "step": 0,
                                  "run_id": sorted(runs)[0]}
    sampled = httpx.get(f"{ajax}/metrics/get-history-bulk-interval",
                        params={"run_ids": runs[:1], "metric_key": "loss", "max_results": 5}).json()
    assert [p["step"] for p in sampled["metrics"]] == [0, 2, 4, 6, 8, 9]
    bad = httpx.get(f"{ajax}/metrics/get-history-bulk", params={"metric_key": "loss"})
    assert bad.status_code == 400 and "must specify at least one run_id" in bad.json()["message"]

    client.log_inputs(runs[0], [DatasetInput(_dataset(), tags=[InputTag("mlflow.data.context", "eval")])])
    found = httpx.post(f"{ajax}/experiments/search-datasets", json={"experiment_ids": [experiment_id]}).json()
    assert found["dataset_summaries"] == [{"experiment_id": experiment_id, "name": "train", "digest": "d1",
                                           "context": "eval"}]
    # MLflow's `datasets/search` is its GenAI evaluation datasets' route, which diary does not serve.
    genai = httpx.post(f"{ajax}/datasets/search", json={"experiment_ids": [experiment_id]})
    assert genai.status_code == 404 and genai.json()["error_code"] == "ENDPOINT_NOT_FOUND"

    uploaded = httpx.post(f"{ajax}/upload-artifact", params={"run_uuid": runs[0], "path": "notes/a.txt"},
                          content=b"hello")
    assert uploaded.status_code == 200
    got = httpx.get(f"{mlflow_server.url}/get-artifact", params={"run_uuid": runs[0], "path": "notes/a.txt"})
    assert got.content == b"hello"
    assert [f.path for f in client.list_artifacts(runs[0], "notes")] == ["notes/a.txt"]
    refused = httpx.post(f"{ajax}/upload-artifact", params={"run_uuid": runs[0], "path": "../x"}, content=b"x")
    assert refused.status_code == 400 and "Invalid path" in refused.json()["message"]


def test_registry_routes_are_diarys_registry(client: MlflowClient, mlflow_server: MlflowServer) -> None:
    run_id = client.create_run(client.create_experiment("reg")).info.run_id
    client.create_registered_model("fraud", description="first")
    first = client.create_model_version("fraud", f"runs:/{run_id}/model", run_id)
    second = client.create_model_version("fraud", "s3://bucket/model", run_id)
    assert (first.version, second.version, second.source, second.run_id) == ("1", "2", "s3://bucket/model", run_id)
    client.transition_model_version_stage("fraud", "1", "Production")
    client.set_registered_model_alias("fraud", "champion", "2")
    assert client.get_model_version_by_alias("fraud", "champion").version == "2"
    assert client.get_model_version("fraud", "1").current_stage == "Production"
    assert [m.name for m in client.search_registered_models(filter_string="name LIKE 'fr%'")] == ["fraud"]
    assert client.get_model_version_download_uri("fraud", "2") == "s3://bucket/model"
    # The same rows diary's registry (and `diary models`) shows.
    diary = mlflow_server.diary
    project = diary.get_project_by_name("mlflow")
    (model,) = diary.get_models(project.id)
    versions = diary.get_model_versions(model.id)
    assert [(v.version, v.iteration_id, v.stage.name) for v in versions] == [
        (1, int(run_id), "PRODUCTION"), (2, int(run_id), "NO_STAGE")]
    with pytest.raises(MlflowException, match="not found"):
        client.get_registered_model("absent")
    with pytest.raises(MlflowException, match="run_id"):
        client.create_model_version("fraud", "s3://bucket/other")  # diary records the run behind a version
    client.delete_registered_model("fraud")
    assert diary.get_models(project.id) == []
