"""The batched core queries the dashboard reads with, on SQLite and PostgreSQL (the contract suite
checks them on every tracker kind)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from diary_integrations import ExperimentStatus, LocalTracker, Unprocessable


@pytest.fixture(params=["sqlite", "postgres"])
def local(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalTracker]:
    url = str(tmp_path / "q.db") if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    tracker = LocalTracker(url)
    yield tracker
    tracker.close()


def _iteration(tracker: LocalTracker) -> tuple[int, int]:
    project, _ = tracker.create_project("p")
    experiment, _ = tracker.create_experiment(project, ExperimentStatus.IN_PROGRESS, "e")
    return experiment, tracker.create_iteration(experiment).id


def test_parameter_values_of_many_iterations(local):
    experiment, a = _iteration(local)
    b, _ = local.create_iteration(experiment)
    local.log_parameters(a, {"lr": 1e-3, "depth": 4})
    assert local.get_parameter_values([a, b]) == {a: {"lr": "0.001", "depth": "4"}, b: {}}
    assert local.get_parameter_values([]) == {}
    with pytest.raises(Unprocessable, match="iteration_ids"):
        local.get_parameter_values(["1"])


def test_metric_series_small_series_come_back_whole(local):
    experiment, a = _iteration(local)
    b, _ = local.create_iteration(experiment)
    local.log_metric_points(a, [("loss", v, s) for s, v in [(0, 3.0), (1, math.nan), (2, math.inf), (5, 1.0)]])
    local.log_metric_points(a, [("acc", 0.5, 0)])
    got = local.get_metric_series([a, b], "loss", max_points=10)
    assert got[b] == []
    assert [s for s, _ in got[a]] == [0, 1, 2, 5] and math.isnan(got[a][1][1]) and got[a][2][1] == math.inf
    assert local.get_metric_series([a], "loss")[a][3] == (5, 1.0)
    with pytest.raises(Unprocessable, match="max_points"):
        local.get_metric_series([a], "loss", max_points=1)


def test_metric_series_long_series_keep_their_envelope(local):
    _, a = _iteration(local)
    n = 20_000
    values = [math.sin(s / 500) + (5.0 if s == 12_345 else 0.0) - (4.0 if s == 777 else 0.0) for s in range(n)]
    local.log_metric_points(a, [("loss", v, s) for s, v in enumerate(values)])
    got = local.get_metric_series([a], "loss", max_points=400)[a]
    assert 100 < len(got) <= 400
    steps = [s for s, _ in got]
    assert steps == sorted(steps) and steps[0] == 0 and steps[-1] == n - 1
    assert max(v for _, v in got) == max(values) and min(v for _, v in got) == min(values)
