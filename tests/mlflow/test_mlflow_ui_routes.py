"""The routes MLflow's web UI and its own REST tests call beyond the client's (issue 26), with a stock
MLflow client against a real `diary server`: `/graphql`, a run's `artifacts/list`, a logged model's
files, a model version's files and search by run; MLflow's error texts and run order on the routes
its tests compare them on."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag
from mlflow_helpers import MlflowServer


@pytest.fixture
def client(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    return MlflowClient(mlflow_server.url)


def _graphql(url: str, query: str, **extra: Any) -> dict[str, Any]:
    answer = httpx.post(f"{url}/graphql", json={"query": query, **extra})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_graphql_reads_what_the_ui_shows(client: MlflowClient, mlflow_server: MlflowServer, tmp_path: Path) -> None:
    url = mlflow_server.url
    experiment_id = client.create_experiment("ui")
    first = client.create_run(experiment_id, start_time=5).info.run_id
    run_id = client.create_run(experiment_id, start_time=6).info.run_id
    for step in range(4):
        client.log_metric(run_id, "loss", step / 2, timestamp=1000 + step, step=step)
    client.log_metric(run_id, "odd", math.nan, timestamp=7, step=9)
    client.create_registered_model("ui-model")
    client.create_model_version("ui-model", f"runs:/{run_id}/model", run_id)
    (tmp_path / "a.txt").write_text("hello world")
    client.log_artifact(run_id, str(tmp_path / "a.txt"))
    client.log_artifact(run_id, str(tmp_path / "a.txt"), "sub")
    client.log_inputs(run_id, [DatasetInput(Dataset("train", "d1", "local", "/x"), tags=[]),
                               DatasetInput(Dataset("test", "d2", "local", "/y"),
                                            tags=[InputTag("mlflow.data.context", "eval")])])

    got = _graphql(url, f"""query GetRun @component(name: "MLflow.ExperimentRunTracking") {{
        mlflowGetRun(input: {{runId: "{run_id}"}}) {{ run {{
            info {{ status startTime endTime }} experiment {{ name experimentId }} modelVersions {{ name version }}
            data {{ metrics {{ key value step timestamp }} }} outputs {{ modelOutputs {{ modelId }} }} }} }} }}""")
    assert got["errors"] is None
    run = got["data"]["mlflowGetRun"]["run"]
    assert run["info"] == {"status": "RUNNING", "startTime": "6", "endTime": "0"}  # unset reads as MLflow's 0
    assert run["experiment"] == {"name": "ui", "experimentId": experiment_id}
    assert run["modelVersions"] == [{"name": "ui-model", "version": "1"}]
    assert sorted(run["data"]["metrics"], key=lambda m: m["key"]) == [
        {"key": "loss", "value": 1.5, "step": "3", "timestamp": "1003"},
        {"key": "odd", "value": None, "step": "9", "timestamp": "7"}]  # NaN is null, as in MLflow
    assert run["outputs"] == {"modelOutputs": []}

    searched = _graphql(url, f'mutation S {{ mlflowSearchRuns(input: {{experimentIds: ["{experiment_id}"]}}) '
                             "{ runs { info { runId } } } }")
    assert [r["info"]["runId"] for r in searched["data"]["mlflowSearchRuns"]["runs"]] == [run_id, first]

    history = _graphql(url, "query H($data: MlflowGetMetricHistoryBulkIntervalInput!) { "
                            "mlflowGetMetricHistoryBulkInterval(input: $data) { "
                            "__typename metrics { step value runId } } }",
                       variables={"data": {"runIds": [run_id], "metricKey": "loss"}})
    answer = history["data"]["mlflowGetMetricHistoryBulkInterval"]
    assert answer["__typename"] == "MlflowGetMetricHistoryBulkIntervalResponse"
    assert answer["metrics"] == [{"step": str(s), "value": s / 2, "runId": run_id} for s in range(4)]

    listed = _graphql(url, f'query L {{ top: mlflowListArtifacts(input: {{runId: "{run_id}"}}) '
                           "{ files { path isDir fileSize } } "
                           f'sub: mlflowListArtifacts(input: {{runId: "{run_id}", path: "sub"}}) '
                           "{ files { path } } }")
    assert listed["data"]["top"]["files"] == [{"path": "a.txt", "isDir": False, "fileSize": "11"},
                                              {"path": "sub", "isDir": True, "fileSize": "0"}]
    assert listed["data"]["sub"]["files"] == [{"path": "sub/a.txt"}]

    datasets = _graphql(url, f'mutation D {{ mlflowSearchDatasets(input: {{experimentIds: ["{experiment_id}"]}}) '
                             "{ datasetSummaries { name digest context } } }")
    assert sorted(datasets["data"]["mlflowSearchDatasets"]["datasetSummaries"], key=lambda d: d["digest"]) == [
        {"name": "train", "digest": "d1", "context": ""}, {"name": "test", "digest": "d2", "context": "eval"}]

    experiment = _graphql(url, "query E($input: MlflowGetExperimentInput!) { mlflowGetExperiment(input: $input) "
                               "{ experiment { name creationTime tags { key } } } }",
                          variables={"input": {"experimentId": experiment_id}})
    assert experiment["data"]["mlflowGetExperiment"]["experiment"]["name"] == "ui"
    assert experiment["data"]["mlflowGetExperiment"]["experiment"]["creationTime"].isdigit()


def test_graphql_refusals(client: MlflowClient, mlflow_server: MlflowServer) -> None:
    url = mlflow_server.url
    client.create_experiment("refusals")
    assert _graphql(url, 'query T { test(inputString: "abc") { output } }') == {
        "data": {"test": {"output": "abc"}}, "errors": None}
    many_roots = "query T {" + " ".join(f'k{i}: test(inputString: "x") {{ output }}' for i in range(12)) + "}"
    assert "should have at most 10 root fields" in _graphql(url, many_roots)["errors"][0]
    many_aliases = ('query T { mlflowGetExperiment(input: {experimentId: "1"}) {'
                    + " ".join(f"e{i}: experiment {{ name }}" for i in range(12)) + "} }")
    assert "should have at most 10 aliases" in _graphql(url, many_aliases)["errors"][0]
    inner = "name"
    for _ in range(12):
        inner = f"name {{ {inner} }}"
    deep = f'query T {{ mlflowGetExperiment(input: {{experimentId: "1"}}) {{ experiment {{ {inner} }} }} }}'
    assert _graphql(url, deep)["errors"] == ["Query exceeds maximum depth of 10"]
    wide = ('query T { mlflowGetExperiment(input: {experimentId: "1"}) { experiment { '
            + " ".join(f"f{i} {{ name }}" for i in range(1002)) + " } } }")
    assert _graphql(url, wide)["errors"] == ["Query exceeds maximum total selections of 1000"]
    # A run that does not exist: the field is null and the error is MLflow's message; unknown fields and
    # bad syntax are errors too, never a 500.
    missing = _graphql(url, 'query T { mlflowGetRun(input: {runId: "999"}) { run { info { status } } } }')
    assert missing["data"] == {"mlflowGetRun": None} and "Run with id=999 not found" in missing["errors"][0]
    assert "Cannot query field" in _graphql(url, "query T { nope }")["errors"][0]
    assert "Syntax Error" in _graphql(url, "query T {")["errors"][0]
    for body in (b"not json", b"[1]", b'{"query": 3}'):
        bad = httpx.post(f"{url}/graphql", content=body)
        assert bad.status_code == 400 and bad.json()["error_code"] == "MALFORMED_REQUEST"


def test_logged_model_files_and_version_files(client: MlflowClient, mlflow_server: MlflowServer,
                                              tmp_path: Path) -> None:
    url, ajax = mlflow_server.url, f"{mlflow_server.url}/ajax-api/2.0/mlflow"
    experiment_id = client.create_experiment("files")
    run_id = client.create_run(experiment_id).info.run_id
    model = client.create_logged_model(experiment_id, name="m", source_run_id=run_id)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "MLmodel").write_text(f"model_id: {model.model_id}")
    (tmp_path / "model" / "data").mkdir()
    (tmp_path / "model" / "data" / "w.bin").write_bytes(b"\x00\x01")
    client.log_model_artifacts(model.model_id, str(tmp_path / "model"))

    listed = httpx.get(f"{ajax}/logged-models/{model.model_id}/artifacts/directories").json()
    assert [(f["path"], f["is_dir"]) for f in listed["files"]] == [("MLmodel", False), ("data", True)]
    inside = httpx.get(f"{ajax}/logged-models/{model.model_id}/artifacts/directories",
                       params={"artifact_directory_path": "data"}).json()
    assert inside["files"] == [{"path": "data/w.bin", "is_dir": False, "file_size": 2}]
    got = httpx.get(f"{ajax}/logged-models/{model.model_id}/artifacts/files", params={"artifact_file_path": "MLmodel"})
    assert got.status_code == 200 and model.model_id in got.text
    climbing = httpx.get(f"{ajax}/logged-models/{model.model_id}/artifacts/files",
                         params={"artifact_file_path": "../x"})
    assert climbing.status_code == 400 and climbing.json()["message"] == "Invalid path"
    absent = httpx.get(f"{ajax}/logged-models/m-absent/artifacts/directories")
    assert absent.status_code == 404 and absent.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"

    client.create_registered_model("files-model")
    client.create_model_version("files-model", f"models:/{model.model_id}", run_id)
    (tmp_path / "plain.txt").write_text("from the run")
    client.log_artifact(run_id, str(tmp_path / "plain.txt"), "model")
    client.create_model_version("files-model", f"runs:/{run_id}/model", run_id)
    for version, path, body in (("1", "MLmodel", f"model_id: {model.model_id}"), ("2", "plain.txt", "from the run")):
        answer = httpx.get(f"{url}/model-versions/get-artifact",
                           params={"name": "files-model", "version": version, "path": path})
        assert (answer.status_code, answer.text) == (200, body)
    climbing = httpx.get(f"{url}//model-versions/get-artifact",
                         params={"name": "files-model", "version": "1", "path": "../x"})
    assert (climbing.status_code, climbing.json()) == (400, {"error_code": "INVALID_PARAMETER_VALUE",
                                                             "message": "Invalid path"})
    other_run = client.create_run(experiment_id).info.run_id
    client.create_model_version("files-model", "s3://bucket/other", other_run)
    by_run = client.search_model_versions(f"run_id = '{run_id}'")
    assert sorted(v.version for v in by_run) == ["1", "2"]
    assert [v.version for v in client.search_model_versions(f"run_id IN ('{other_run}')")] == ["3"]
    page = client.search_model_versions("name = 'files-model'", max_results=2)
    assert [v.version for v in page] == ["3", "2"] and page.token is not None


@pytest.mark.parametrize(("route", "body", "text"), [
    ("log-batch", {"metrics": "foo"}, "Invalid value \"foo\" for parameter 'metrics' supplied"),
    ("log-batch", {"params": "foo"}, "Invalid value \"foo\" for parameter 'params' supplied"),
    ("log-batch", {"metrics": [{"key": "mae", "value": 2.5}]},
     "Missing value for required parameter 'metrics[0].timestamp'"),
    ("log-metric", {"key": 31, "value": 1, "timestamp": 1}, "Invalid value 31 for parameter 'key' supplied"),
    ("log-metric", {"key": None, "value": 1, "timestamp": 1}, "Missing value for required parameter 'key'"),
    ("log-metric", {"key": "k", "value": 1, "timestamp": 1, "step": "foo"},
     "Invalid value \"foo\" for parameter 'step' supplied"),
    ("set-tag", {"key": "t", "value": 41}, "Invalid value 41 for parameter 'value' supplied"),
    ("log-parameter", {"key": 31, "value": "v"}, "Invalid value 31 for parameter 'key' supplied"),
])
def test_validation_in_mlflows_words(client: MlflowClient, mlflow_server: MlflowServer, route: str,
                                     body: dict[str, Any], text: str) -> None:
    run_id = client.create_run(client.create_experiment("words")).info.run_id
    answer = httpx.post(f"{mlflow_server.url}/api/2.0/mlflow/runs/{route}", json={"run_id": run_id, **body})
    assert answer.status_code == 400 and text in answer.json()["message"]
    assert client.get_run(run_id).data.metrics == {} and client.get_run(run_id).data.params == {}


def test_artifact_paths_and_run_order_as_mlflow(client: MlflowClient, mlflow_server: MlflowServer) -> None:
    experiment_id = client.create_experiment("order")
    runs = sorted(client.create_run(experiment_id, start_time=1).info.run_id for _ in range(11))
    assert runs[:3] == ["1", "10", "11"]  # a fresh database; ids as text: "10" sorts before "2"
    found: list[str] = []
    token = None
    for _ in range(3):
        page = client.search_runs([experiment_id], max_results=4, page_token=token)
        found += [r.info.run_id for r in page]
        token = page.token
    assert found == runs and token is None
    for route in ("api/2.0/mlflow/artifacts/list", "get-artifact"):
        answer = httpx.get(f"{mlflow_server.url}/{route}", params={"run_id": runs[0], "path": "../path"})
        assert (answer.status_code, answer.json()) == (400, {"error_code": "INVALID_PARAMETER_VALUE",
                                                             "message": "Invalid path"})
