"""MLflow's credentials on a `diary server` with auth on: MLFLOW_TRACKING_USERNAME/PASSWORD (basic auth)
and MLFLOW_TRACKING_TOKEN (a diary bearer token) are diary users, with diary's per-project permissions."""

from __future__ import annotations

import httpx
import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from server_harness import start_cli_server

from diary_integrations import RemoteTracker

PASSWORD = "mlflow-admin-password"


@pytest.fixture
def auth_server(tmp_path, monkeypatch):
    live = start_cli_server(
        tmp_path,
        f"sqlite:///{tmp_path / 'auth.db'}",
        env={
            "DIARY_ENABLE_AUTH": "true",
            "DIARY_JWT_SECRET": "mlflow-secret-" + "m" * 40,
            "DIARY_ADMIN_PASSWORD": PASSWORD,
            "DIARY_MLFLOW_PROJECT": "team-mlflow",  # MLflow's experiments live in this project
        },
    )
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    try:
        yield live
    finally:
        live.stop()


def test_basic_auth_and_bearer_tokens_are_diary_users(auth_server, monkeypatch) -> None:
    client = MlflowClient(auth_server.url)
    with pytest.raises(MlflowException, match="UNAUTHENTICATED"):
        client.create_experiment("anonymous")

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "default")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
    with pytest.raises(MlflowException, match="UNAUTHENTICATED"):
        client.create_experiment("wrong password")

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    experiment_id = client.create_experiment("by basic auth")
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "loss", 0.5)
    assert client.get_run(run.info.run_id).info.user_id == "default"

    admin = RemoteTracker(auth_server.url, username="default", password=PASSWORD)
    try:
        admin.create_user("viewer", "viewer-password")
        viewer = admin.get_user("viewer")
        project = admin.get_project_by_name("team-mlflow")
        assert admin.get_experiment(int(experiment_id)).project_id == project.id
        admin.create_user_permission(viewer.id, project.id, read=True)
    finally:
        admin.close()
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "viewer")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "viewer-password")
    assert client.get_run(run.info.run_id).data.metrics == {"loss": 0.5}
    with pytest.raises(MlflowException, match="PERMISSION_DENIED"):
        client.log_metric(run.info.run_id, "loss", 0.4)
    with pytest.raises(MlflowException, match="PERMISSION_DENIED"):
        client.create_experiment("not allowed")

    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    token = httpx.post(
        f"{auth_server.url}/auth", json={"username": "default", "password": PASSWORD}, timeout=30
    ).json()["access_token"]
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    mlflow.set_tracking_uri(auth_server.url)
    try:
        mlflow.set_experiment("by token")
        with mlflow.start_run() as fluent:
            mlflow.log_param("via", "token")
        assert MlflowClient().get_run(fluent.info.run_id).data.params == {"via": "token"}
    finally:
        mlflow.set_tracking_uri(None)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "not-a-token")
    with pytest.raises(MlflowException, match="UNAUTHENTICATED"):
        client.get_run(run.info.run_id)
