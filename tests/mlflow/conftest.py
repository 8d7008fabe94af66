"""The MLflow tests' fixture: stock MLflow clients against the session's real `diary server` process, on
a fresh SQLite database per test, with a diary client on the same server to check what landed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow_helpers import MlflowServer

from diary_integrations import RemoteTracker


@pytest.fixture(params=["sqlite"])
def mlflow_server(
    request: pytest.FixtureRequest, live_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MlflowServer]:
    """SQLite unless a test asks for more with `@pytest.mark.parametrize("mlflow_server", [...], indirect=True)`."""
    database = tmp_path / "server.db"
    if request.param == "postgres":
        live_server.use_database(request.getfixturevalue("server_postgres_url"), reset=True)
    else:
        live_server.use_database(f"sqlite:///{database}")
    # A 500 must fail the test at once, not hide behind MLflow's retries with back-off.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.chdir(tmp_path)  # anything MLflow writes locally stays in the test's directory
    mlflow.set_tracking_uri(live_server.url)
    diary = RemoteTracker(live_server.url)
    try:
        yield MlflowServer(live_server.url, database, diary)
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        diary.close()
        mlflow.set_tracking_uri(None)
