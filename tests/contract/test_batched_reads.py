"""Contract: the batched reads a sweep page uses (`get_parameter_values`, `get_metric_series`), and ids
beyond what the database can store, which name nothing on every tracker kind."""

from __future__ import annotations

import math

import pytest

from diary_integrations import Unprocessable

UNKNOWN = 999_999


@pytest.fixture
def pair(tracker, experiment_id):
    """Two running iterations of one experiment."""
    return tracker.create_iteration(experiment_id).id, tracker.create_iteration(experiment_id).id


def _row_counts(tracker, ids):
    return [(len(tracker.get_parameters(i)), len(tracker.get_metrics(i))) for i in ids]


def test_parameter_values_of_several_iterations(tracker, pair):
    a, b = pair
    tracker.log_parameters(a, {"lr": 1e-3, "depth": 4, "note": ""})
    tracker.log_parameters(b, {"lr": 0.1})
    got = tracker.get_parameter_values([a, UNKNOWN, b])
    assert got == {a: {"lr": "0.001", "depth": "4", "note": ""}, UNKNOWN: {}, b: {"lr": "0.1"}}
    assert list(got) == [a, UNKNOWN, b]
    assert tracker.get_parameter_values([]) == {}
    assert tracker.get_parameter_values([b, b]) == {b: {"lr": "0.1"}}


def test_parameter_values_beyond_one_request(tracker, pair):
    # More ids than the server takes per request: the client sends them in chunks.
    a, b = pair
    tracker.create_parameter(b, "lr", 0.5)
    ids = [a, *range(UNKNOWN, UNKNOWN + 2500), b]
    got = tracker.get_parameter_values(ids)
    assert len(got) == len(ids) and got[b] == {"lr": "0.5"} and got[a] == {} and got[UNKNOWN + 2499] == {}


def test_metric_series_whole_and_non_finite(tracker, pair):
    a, b = pair
    points = [(0, 3.0), (1, math.nan), (2, math.inf), (3, -math.inf), (7, 1.5)]
    tracker.log_metric_points(a, [("loss", v, s) for s, v in reversed(points)])
    tracker.log_metric_points(a, [("acc", 0.5, 0)])
    tracker.log_metric_points(b, [("loss", 9.0, 4)])
    for max_points in (None, 10):
        got = tracker.get_metric_series([a, b, UNKNOWN], "loss", max_points=max_points)
        assert list(got) == [a, b, UNKNOWN]
        assert [s for s, _ in got[a]] == [0, 1, 2, 3, 7]
        values = [v for _, v in got[a]]
        assert values[0] == 3.0 and math.isnan(values[1]) and values[2:] == [math.inf, -math.inf, 1.5]
        assert got[b] == [(4, 9.0)] and got[UNKNOWN] == []
    assert tracker.get_metric_series([], "loss") == {}
    assert tracker.get_metric_series([a], "missing-key") == {a: []}


def test_metric_series_downsampled_keeps_a_single_point_spike(tracker, pair):
    a, b = pair
    n = 5000
    values = [math.sin(s / 300) + (50.0 if s == 3217 else 0.0) - (40.0 if s == 611 else 0.0) for s in range(n)]
    tracker.log_metric_points(a, [("loss", v, s) for s, v in enumerate(values)])
    tracker.log_metric_points(b, [("loss", 1.0, s) for s in range(n)])
    whole = tracker.get_metric_series([a], "loss")[a]
    assert whole == list(enumerate(values))
    got = tracker.get_metric_series([a, b], "loss", max_points=100)
    series = got[a]
    assert 10 < len(series) <= 100
    steps = [s for s, _ in series]
    assert steps == sorted(steps) and steps[0] == 0 and steps[-1] == n - 1
    # Each extreme survives, drawn at an edge of its step bucket (50 buckets of 100 steps).
    assert max(v for _, v in series) == max(values) and min(v for _, v in series) == min(values)
    assert [s // 100 for s, v in series if v in (max(values), min(values))] == [6, 32]
    assert 0 < len(got[b]) <= 100 and {v for _, v in got[b]} == {1.0}


def test_metric_series_many_iterations_share_the_budget(tracker, pair):
    # 1500 ids at 1000 points each exceed one request's budget: the client splits them.
    a, b = pair
    tracker.log_metric_points(b, [("loss", float(s), s) for s in range(3)])
    ids = [a, *range(UNKNOWN, UNKNOWN + 1500), b]
    got = tracker.get_metric_series(ids, "loss", max_points=1000)
    assert len(got) == len(ids) and got[b] == [(0, 0.0), (1, 1.0), (2, 2.0)] and got[a] == []


BAD = [
    ("max_points of 1", lambda t, i: t.get_metric_series([i], "loss", max_points=1), "max_points"),
    ("max_points of 0", lambda t, i: t.get_metric_series([i], "loss", max_points=0), "max_points"),
    ("max_points as text", lambda t, i: t.get_metric_series([i], "loss", max_points="10"), "max_points"),
    ("max_points as bool", lambda t, i: t.get_metric_series([i], "loss", max_points=True), "max_points"),
    ("max_points as float", lambda t, i: t.get_metric_series([i], "loss", max_points=10.0), "max_points"),
    ("series id as text", lambda t, i: t.get_metric_series([str(i)], "loss"), "iteration_ids"),
    ("series id negative", lambda t, i: t.get_metric_series([-1], "loss", max_points=10), "iteration_ids"),
    ("series key empty", lambda t, i: t.get_metric_series([i], " ", max_points=10), "key"),
    ("series key not text", lambda t, i: t.get_metric_series([i], 3), "key"),
    ("values id as text", lambda t, i: t.get_parameter_values([str(i)]), "iteration_ids"),
    ("values id as bool", lambda t, i: t.get_parameter_values([True]), "iteration_ids"),
    ("values id as float", lambda t, i: t.get_parameter_values([float(i)]), "iteration_ids"),
]


@pytest.mark.parametrize(("name", "call", "field"), BAD, ids=[c[0] for c in BAD])
def test_batched_reads_refuse_bad_input(tracker, pair, name, call, field):
    a, b = pair
    tracker.log_metric_points(a, [("loss", 1.0, 0)])
    before = _row_counts(tracker, pair)
    with pytest.raises(Unprocessable) as info:
        call(tracker, a)
    assert info.value.field == field and field.split("[")[0] in str(info.value)
    assert _row_counts(tracker, pair) == before


HUGE = [2**31, 2**40, 2**63 - 1, 2**63, 2**80]


@pytest.mark.parametrize("huge", HUGE)
def test_ids_beyond_the_database_range_name_nothing(tracker, experiment_id, huge):
    iteration_id = tracker.create_iteration(experiment_id).id
    assert tracker.get_iteration(huge) is None
    assert tracker.get_experiment(huge) is None
    assert tracker.get_project(huge) is None
    assert tracker.get_parameter(huge) is None
    assert tracker.get_metric(huge) is None
    assert tracker.get_tag(huge) is None
    assert tracker.get_resource(huge) is None
    assert tracker.get_user(huge) is None
    assert tracker.get_environment(huge) is None
    assert tracker.get_parameters(huge) == [] and tracker.get_metrics(huge, key="loss") == []
    assert tracker.get_child_iterations(huge) == [] and tracker.get_iterations(huge) == []
    assert tracker.get_experiments(huge) == [] and tracker.get_resources(huge) == []
    assert tracker.get_tags("iteration", huge) == []
    assert tracker.get_best_child_iteration(huge, "loss") is None
    assert tracker.get_latest_metrics([iteration_id, huge]) == {iteration_id: {}, huge: {}}
    assert tracker.get_parameter_values([huge]) == {huge: {}}
    assert tracker.get_metric_series([huge, iteration_id], "loss", max_points=10) == {huge: [], iteration_id: []}
    assert tracker.delete_iteration(huge) is False
    assert tracker.get_iteration(iteration_id) is not None


def test_writes_to_an_id_beyond_the_database_range_are_refused(tracker, experiment_id):
    iteration_id = tracker.create_iteration(experiment_id).id
    with pytest.raises(Unprocessable, match="iteration_id") as info:
        tracker.create_metric(2**31, "loss", 1.0)
    assert info.value.field == "iteration_id"
    with pytest.raises(Unprocessable, match="parent_iteration_id"):
        tracker.create_iteration(experiment_id, parent_iteration_id=2**40)
    assert [it.id for it in tracker.get_iterations(experiment_id)] == [iteration_id]
