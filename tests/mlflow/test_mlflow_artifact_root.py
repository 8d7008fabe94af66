"""`diary server --default-artifact-root` (issue 26), with a stock MLflow client against the real server
process: experiments made through MLflow's API keep `<root>/<id>`, the client writes its files there and
the server lists them as MLflow's does (only under that root); and the sources `model-versions/create`
accepts, in MLflow's words, with nothing written for a refused one."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient


@pytest.fixture
def root_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A `diary server` started as a user starts it, with MLflow's artifacts under tmp_path/artifacts."""
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    root = tmp_path / "artifacts"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIARY_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "diary_integrations.cli", "server", "--port", "0", "--workers", "1",
         "--db", f"sqlite:///{tmp_path / 'server.db'}", "--default-artifact-root", str(root)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on " in line, line
        yield line.rsplit(" ", 1)[-1].strip(), root
    finally:
        process.terminate()
        process.wait(timeout=30)
        # MLflow's client caches a run's artifact repository by run id alone, whatever the server: this
        # server's run 1 (a file: folder) must not answer for the next test's run 1 (the proxy).
        from mlflow.tracking._tracking_service import utils

        utils._artifact_repos_cache.clear()


def test_experiments_keep_their_folder_under_the_root(root_server: tuple[str, Path], tmp_path: Path) -> None:
    url, root = root_server
    client = MlflowClient(url)
    experiment_id = client.create_experiment("art")
    location = client.get_experiment(experiment_id).artifact_location
    assert location == f"{root.as_uri()}/{experiment_id}"  # a bare path became its file:// URI
    default = client.get_experiment("0")
    assert default.artifact_location == f"{root.as_uri()}/{default.experiment_id}"
    run = client.create_run(experiment_id)
    assert run.info.artifact_uri == f"{location}/{run.info.run_id}/artifacts"

    source = tmp_path / "hello.txt"
    source.write_text("hello world")
    client.log_artifact(run.info.run_id, str(source))
    client.log_artifact(run.info.run_id, str(source), "sub")
    # The client wrote the files itself, into the folder; the server lists that folder, as MLflow's does.
    folder = root / experiment_id / run.info.run_id / "artifacts"
    assert (folder / "hello.txt").read_text() == "hello world"
    listed = httpx.get(f"{url}/api/2.0/mlflow/artifacts/list", params={"run_id": run.info.run_id}).json()
    assert listed["files"] == [{"path": "hello.txt", "is_dir": False, "file_size": 11},
                               {"path": "sub", "is_dir": True}]
    listed = httpx.get(f"{url}/api/2.0/mlflow/artifacts/list",
                       params={"run_id": run.info.run_id, "path": "sub"}).json()
    assert listed["files"] == [{"path": "sub/hello.txt", "is_dir": False, "file_size": 11}]


def test_a_folder_outside_the_root_is_not_read(root_server: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = root_server
    client = MlflowClient(url)
    elsewhere = tmp_path / "elsewhere"
    experiment_id = client.create_experiment("outside", artifact_location=elsewhere.as_uri())
    run_id = client.create_run(experiment_id).info.run_id
    secret = elsewhere / run_id / "artifacts" / "secret.txt"
    secret.parent.mkdir(parents=True)
    secret.write_text("not the server's to show")
    listed = httpx.get(f"{url}/api/2.0/mlflow/artifacts/list", params={"run_id": run_id}).json()
    assert listed["files"] == []


@pytest.mark.parametrize(("body", "text"), [
    ({"source": "{artifacts}"}, "To use a local path as a model version source, the run_id request parameter"),
    ({"source": "/tmp", "run_id": "{run}"}, "contained within the artifact directory of the run"),
    ({"source": "file:///path/to/model", "model_id": "m-1"}, "the model_id request parameter"),
    ({"source": "file://10.1.2.3/path", "run_id": "{run}"}, "is not a valid remote uri"),
    ({"source": "mlflow-artifacts://host:9000/models/../../../", "run_id": "{run}"}, "Invalid model version source"),
    ({"source": "s3://bucket/a/..%2f..%2fb", "run_id": "{run}"}, "an absolute path must be provided"),
    ({"source": "https://host/models/artifact%00", "run_id": "{run}"}, "an absolute path must be provided"),
    ({"source": "/tmp/a\x00b", "run_id": "{run}"}, "an absolute path must be provided"),
])
def test_model_version_sources_refused_as_mlflow_does(root_server: tuple[str, Path], body: dict, text: str) -> None:
    url, _ = root_server
    client = MlflowClient(url)
    run = client.create_run(client.create_experiment("sources"))
    client.create_registered_model("m")
    fields = {"run": run.info.run_id, "artifacts": run.info.artifact_uri[len("file://"):]}
    body = {k: v.format(**fields) for k, v in body.items()}
    answer = httpx.post(f"{url}/api/2.0/mlflow/model-versions/create", json={"name": "m", **body})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE" and text in answer.json()["message"]
    assert client.search_model_versions("name = 'm'") == []


def test_model_version_sources_accepted(root_server: tuple[str, Path]) -> None:
    url, _ = root_server
    client = MlflowClient(url)
    run = client.create_run(client.create_experiment("sources"))
    client.create_registered_model("m")
    accepted = [run.info.artifact_uri, f"{run.info.artifact_uri}/model", run.info.artifact_uri[len("file://"):],
                "mlflow-artifacts:/models/foo///bar", "mlflow-artifacts://host:9000/models/artifact/..../",
                f"runs:/{run.info.run_id}/model"]
    for source in accepted:
        client.create_model_version("m", source, run.info.run_id)
    assert [v.source for v in client.search_model_versions("name = 'm'")][::-1] == accepted
