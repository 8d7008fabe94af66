"""pytest plugin: MLflow's `tests/tracking/test_rest_tracking.py` against `diary server` (or, with
`--peer-target=mlflow`, against MLflow's own server, as the file has it).

Only the tests that use the `mlflow_client` fixture run, on its SQL store parameter. For diary, that
fixture is the one thing replaced: it starts `diary server` on a fresh SQLite file on a free loopback
port and yields an `MlflowClient` on it, with the tracking and registry URIs pointed there as MLflow's
fixture does, and the test's tmp_path as the default artifact root as MLflow's fixture gives its server.
Every test body runs unchanged.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .results import install

MODULE = "test_rest_tracking.py"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--peer-target", default="diary", choices=["diary", "mlflow"],
                     help="the server the MLflow client talks to")


def pytest_configure(config: pytest.Config) -> None:
    install(config, lambda nodeid: config.getoption("--peer-target"))
    _bridge_versions()


def _bridge_versions() -> None:
    """The 3.6-era conftest calls `workspace_context.clear_workspace()`, which later MLflow clients name
    `set_workspace(None)` plus `clear_server_request_workspace()`: the same for both targets."""
    from mlflow.utils import workspace_context as wc

    if not hasattr(wc, "clear_workspace"):
        def clear_workspace() -> None:
            wc.set_workspace(None)
            wc.clear_server_request_workspace()

        wc.clear_workspace = clear_workspace


def start_diary_server(workdir: Path, artifact_root: str) -> tuple[subprocess.Popen[str], str]:
    """`diary server --port 0` on a fresh SQLite file, as a user starts it, with MLflow's artifacts under
    `artifact_root` (MLflow's fixture gives its server the test's tmp_path the same way); (process, URL)."""
    log = (workdir / "diary-server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "diary_integrations.cli", "server", "--host", "127.0.0.1", "--port", "0",
         "--db", f"sqlite:///{workdir / 'diary.db'}", "--default-artifact-root", artifact_root],
        # The test's working directory, as MLflow's in-process server has it (relative artifact locations).
        cwd=os.getcwd(), stdout=subprocess.PIPE, stderr=log, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("DIARY_")},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening on " not in line:
        process.kill()
        raise RuntimeError(f"diary server did not start: {line!r}; see {log.name}")
    return process, line.rsplit(" ", 1)[-1].strip()


def diary_mlflow_client(tmp_path: Path) -> Iterator[Any]:
    """MLflow's `mlflow_client` fixture with `diary server` behind it."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.tracking._tracking_service import utils

    # MLflow's client caches a run's artifact repository by run id alone. diary's run ids are integers
    # that start again at 1 in each test's fresh database (MLflow's are uuids), so an earlier test's run 1
    # would answer for this one's, with the earlier test's folder.
    utils._artifact_repos_cache.clear()
    workdir = tmp_path / "diary-server"
    workdir.mkdir()
    previous_registry_uri, previous_tracking_uri = mlflow.get_registry_uri(), mlflow.get_tracking_uri()
    process, url = start_diary_server(workdir, tmp_path.as_uri())
    try:
        mlflow.set_registry_uri(url)
        mlflow.set_tracking_uri(url)
        yield MlflowClient(url)
    finally:
        mlflow.set_registry_uri(previous_registry_uri)
        mlflow.set_tracking_uri(previous_tracking_uri)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.hookimpl(tryfirst=True)
def pytest_collectstart(collector: pytest.Collector) -> None:
    """Before MLflow's module is collected, its `mlflow_client` fixture becomes diary's."""
    if (isinstance(collector, pytest.Module) and collector.path.name == MODULE
            and collector.config.getoption("--peer-target") == "diary"):
        collector.obj.mlflow_client = pytest.fixture(name="mlflow_client")(diary_mlflow_client)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def wanted(item: pytest.Item) -> bool:
        callspec = getattr(item, "callspec", None)
        store = callspec.params.get("store_type") if callspec is not None else None
        return "mlflow_client" in getattr(item, "fixturenames", ()) and store in (None, "sqlalchemy")

    keep = [i for i in items if wanted(i)]
    config.hook.pytest_deselected(items=[i for i in items if i not in keep])
    items[:] = keep
