"""A GridSearchCV under `joblib.parallel_backend("dask")` on a real `dask.distributed.LocalCluster` (2 worker
processes) leaves the same tree as under loky, on a tracker every host can reach (a tracking server,
PostgreSQL): with the workers sending fold events to the main process's socket, and with the workers
writing them to the tracker themselves, as workers on other hosts do (`DIARY_SKLEARN_DIRECT=1`)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import joblib
import pytest

distributed = pytest.importorskip("distributed", reason="needs the [dask] extra")

from sk_helpers import Picky, marked  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold  # noqa: E402

from diary_integrations import IterationStatus, connect  # noqa: E402
from diary_integrations.sklearn import DiaryCallback  # noqa: E402
from diary_integrations.sklearn.callback import LOST  # noqa: E402

GRID = {"max_depth": [1, 2, 3], "strict": [False, True]}  # strict candidates fail the 2 folds that train on sample 0


@pytest.fixture(scope="module")
def dask_client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(params=["server", "postgres"])
def shared_uri(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("server_url" if request.param == "server" else "postgres_url")


def _written_here() -> int:
    """How many candidates' children this worker process wrote to itself (its direct writer's state)."""
    from diary_integrations.sklearn._direct import WRITER

    return len(WRITER.children)


def written_by(client) -> int:
    return sum(client.run(_written_here).values())


def _set_direct(on: bool) -> None:
    if on:
        os.environ["DIARY_SKLEARN_DIRECT"] = "1"
    else:
        os.environ.pop("DIARY_SKLEARN_DIRECT", None)


def search_tree(uri: str, iris, backend: str, client=None) -> tuple:
    X, y = iris
    cb = DiaryCallback(project="Dask", experiment=f"grid {backend}", uri=uri)
    search = GridSearchCV(Picky(), GRID, cv=KFold(3, shuffle=True, random_state=0), n_jobs=2)
    search.set_callbacks(cb)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if backend == "loky":
            search.fit(marked(X), y)
        else:
            if client is not None:
                client.run(_set_direct, backend == "dask-direct")
            with joblib.parallel_backend("dask"):
                search.fit(marked(X), y)
    return tree(connect(uri), cb.driver_iteration_id)


def _value(metric) -> str | None:
    """A score as text (NaN equals NaN then); timings are left out (they differ from run to run)."""
    return None if "time" in metric.key else f"{metric.value:.9g}"


def tree(tracker, driver_id: int) -> tuple:
    """What a search left, without ids and timings: the driver's status and parameters; each child's name,
    status, error, notes, parameters and metric keys by step (scores with their values)."""
    driver = tracker.get_iteration(driver_id)
    kids = []
    for child in tracker.get_child_iterations(driver_id):
        points = sorted((m.key, m.step, _value(m)) for m in tracker.get_metrics(child.id))
        kids.append(
            (
                child.name,
                child.status,
                child.error_message,
                bool(child.traceback),
                child.notes,
                tracker.get_parameter_values([child.id])[child.id],
                tuple(points),
            )
        )
    params = tracker.get_parameter_values([driver_id])[driver_id]
    running = tracker.get_iterations(driver.experiment_id, status=IterationStatus.RUNNING)
    return driver.status, params, sorted(kids), len(running)


def same(found: tuple, expected: tuple) -> None:
    """Piece by piece, so that a failure names the part that differs."""
    assert found[0] == expected[0] and found[3] == expected[3] == 0
    assert found[1] == expected[1], "the driver's parameters"
    assert [k[0] for k in found[2]] == [k[0] for k in expected[2]], "one child per candidate"
    for mine, theirs in zip(found[2], expected[2], strict=True):
        assert mine == theirs


def test_dask_tree_equals_loky_tree(shared_uri: str, iris, dask_client) -> None:
    loky = search_tree(shared_uri, iris, "loky")
    status, _, kids, running = loky
    assert status is IterationStatus.SUCCEEDED and running == 0 and len(kids) == 6
    failed = [k for k in kids if k[1] is IterationStatus.FAILED]
    assert len(failed) == 3 and all(k[2] == "ValueError: picky: sample 0 is in the training set" for k in failed)
    assert all(any(p[0] == "fold_time" for p in k[6]) for k in kids)
    before = written_by(dask_client)
    through_socket = search_tree(shared_uri, iris, "dask", dask_client)
    same(through_socket, loky)
    assert written_by(dask_client) == before, "the workers reached the main process's socket"
    written_by_workers = search_tree(shared_uri, iris, "dask-direct", dask_client)
    assert written_by(dask_client) >= before + 6, "every candidate's folds were written by the workers"
    assert not any(LOST in k[2] for k in written_by_workers[2]), "the workers' exceptions reached the tree"
    same(written_by_workers, loky)


def test_a_file_tracker_keeps_the_socket(tmp_path: Path, iris, dask_client) -> None:
    """A SQLite file is not a tracker other hosts reach: workers never write to it, whatever they are told;
    on this host the socket carries the events and the tree is whole."""
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    before = written_by(dask_client)
    same(search_tree(uri, iris, "dask-direct", dask_client), search_tree(uri, iris, "loky"))
    assert written_by(dask_client) == before
