"""Contract: parameters (text) and metrics (float series with per-key steps)."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import pytest

from diary_integrations import Conflict, IterationStatus, Unprocessable


@pytest.fixture
def iteration_id(tracker, experiment_id):
    return tracker.create_iteration(experiment_id).id


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (1e-3, "0.001"), (6, "6"), ("2..10", "2..10"), (True, "true"), (False, "false"), (None, "None"),
        (0.1 + 0.2, "0.30000000000000004"), ([64, 32], "[64, 32]"), ((1, "a"), '[1, "a"]'),
        ({"layers": [64, 32], "act": "relu", "drop": None}, '{"layers": [64, 32], "act": "relu", "drop": null}'),
    ],
)
def test_parameter_values_are_text(tracker, iteration_id, value, stored):
    tracker.create_parameter(iteration_id, "p", value)
    assert [p.value for p in tracker.get_parameters(iteration_id)] == [stored]


@pytest.mark.parametrize(
    ("value", "rule"), [({"x": object()}, "JSON values"), ([float("nan")], "no NaN"), ({1, 2}, "list or dict")]
)
def test_parameter_values_that_are_not_json_are_refused(tracker, iteration_id, value, rule):
    with pytest.raises(Unprocessable, match=rule):
        tracker.create_parameter(iteration_id, "p", value)
    with pytest.raises(Unprocessable, match=rule):
        tracker.log_parameters(iteration_id, {"q": value})
    assert tracker.get_parameters(iteration_id) == []


def test_parameter_crud(tracker, iteration_id):
    param_id, _ = tracker.create_parameter(iteration_id, "max_depth", 6)
    with pytest.raises(Conflict, match="max_depth"):
        tracker.create_parameter(iteration_id, "max_depth", 7)
    assert tracker.get_parameter(param_id).value == "6"
    tracker.update_parameter(param_id, value=8)
    assert tracker.get_parameter(param_id).value == "8"
    assert tracker.delete_parameter(param_id)
    assert tracker.get_parameter(param_id) is None
    assert tracker.get_parameters(iteration_id) == []


def test_log_parameters_is_all_or_nothing_and_idempotent(tracker, iteration_id):
    assert tracker.log_parameters(iteration_id, {"lr": 0.1, "opt": "sgd"}) == 2
    assert tracker.log_parameters(iteration_id, {"lr": 0.1, "batch": 32}) == 1  # lr unchanged: skipped
    with pytest.raises(Conflict, match="lr"):
        tracker.log_parameters(iteration_id, {"momentum": 0.9, "lr": 0.2})
    params = {p.key: p.value for p in tracker.get_parameters(iteration_id)}
    assert params == {"lr": "0.1", "opt": "sgd", "batch": "32"}  # momentum was not written


def test_metric_auto_step_per_key(tracker, iteration_id):
    for value in (0.9, 0.8, 0.7):
        tracker.create_metric(iteration_id, "loss", value)
    tracker.create_metric(iteration_id, "acc", 0.5)
    tracker.create_metric(iteration_id, "loss", 0.6, step=42)
    tracker.create_metric(iteration_id, "loss", 0.5)
    loss = tracker.get_metrics(iteration_id, key="loss")
    assert [(m.step, m.value) for m in loss] == [(0, 0.9), (1, 0.8), (2, 0.7), (42, 0.6), (43, 0.5)]
    assert [m.step for m in tracker.get_metrics(iteration_id, key="acc")] == [0]


def test_log_metrics_batch(tracker, iteration_id):
    assert tracker.log_metrics(iteration_id, {"loss": 0.5, "acc": 0.8}, step=7) == 2
    assert {(m.key, m.step) for m in tracker.get_metrics(iteration_id)} == {("loss", 7), ("acc", 7)}
    tracker.log_metrics(iteration_id, {"f1": 0.1})
    tracker.log_metrics(iteration_id, {"f1": 0.2})
    assert [m.step for m in tracker.get_metrics(iteration_id, key="f1")] == [0, 1]
    stamps = {m.recorded_at for m in tracker.get_metrics(iteration_id) if m.step == 7}
    assert len(stamps) == 1


def test_log_metrics_all_or_nothing(tracker, iteration_id):
    with pytest.raises(Unprocessable, match=r"metrics\['acc'\]"):
        tracker.log_metrics(iteration_id, {"loss": 0.5, "acc": "high"})
    assert tracker.get_metrics(iteration_id) == []


def test_non_finite_values_are_data(tracker, iteration_id):
    tracker.log_metrics(iteration_id, {"nan": math.nan, "inf": math.inf, "ninf": -math.inf}, step=0)
    got = {m.key: m.value for m in tracker.get_metrics(iteration_id)}
    assert math.isnan(got["nan"]) and got["inf"] == math.inf and got["ninf"] == -math.inf


def test_explicit_recorded_at_round_trips(tracker, iteration_id):
    when = datetime(2025, 3, 4, 18, 30, tzinfo=timezone.utc)
    metric_id, _ = tracker.create_metric(iteration_id, "loss", 1.0, step=9, recorded_at=when)
    metric = tracker.get_metric(metric_id)
    assert metric.recorded_at == when and metric.step == 9


def test_bulk_points(tracker, iteration_id):
    points = [("loss", 1.0 / (s + 1), s) for s in range(1000)] + [("acc", 0.5, 3, 1_700_000_000.0)]
    assert tracker.log_metric_points(iteration_id, points) == 1001
    assert len(tracker.get_metrics(iteration_id, key="loss")) == 1000
    assert tracker.get_metrics(iteration_id, key="acc")[0].recorded_at.year == 2023
    with pytest.raises(Unprocessable, match=r"points\[1\]"):
        tracker.log_metric_points(iteration_id, [("loss", 1.0, 2000), ("loss", 1.0)])
    assert len(tracker.get_metrics(iteration_id, key="loss")) == 1000


def test_metric_update_delete_and_latest(tracker, experiment_id, iteration_id):
    metric_id, _ = tracker.create_metric(iteration_id, "loss", 0.3)
    tracker.update_metric(metric_id, value=0.21)
    assert tracker.get_metric(metric_id).value == 0.21
    tracker.log_metrics(iteration_id, {"loss": 0.1, "acc": 0.9}, step=5)
    tracker.log_metrics(iteration_id, {"loss": 0.2}, step=3)
    other, _ = tracker.create_iteration(experiment_id)
    assert tracker.get_latest_metrics([iteration_id, other]) == {iteration_id: {"loss": 0.1, "acc": 0.9}, other: {}}
    assert tracker.delete_metric(metric_id)
    assert tracker.get_metric(metric_id) is None


def test_best_child_by_latest_metric(tracker, experiment_id):
    driver, _ = tracker.create_iteration(experiment_id)
    scores = {"a": [0.5, 0.95], "b": [0.9], "c": [math.nan], "d": [0.99]}
    ids = {}
    for name, series in scores.items():
        child, _ = tracker.create_iteration(experiment_id, parent_iteration_id=driver)
        for step, value in enumerate(series):
            tracker.create_metric(child, "accuracy", value, step=step)
        ids[name] = child
    for name in ("a", "b", "c"):
        tracker.end_iteration(ids[name])
    tracker.end_iteration(ids["d"], IterationStatus.FAILED, error_message="ValueError: diverged")
    best, value = tracker.get_best_child_iteration(driver, "accuracy")
    assert (best.id, value) == (ids["a"], 0.95)  # latest value counts; NaN and FAILED children never win
    assert tracker.get_best_child_iteration(driver, "accuracy", status=None)[0].id == ids["d"]
    assert tracker.get_best_child_iteration(driver, "accuracy", mode="min") == (tracker.get_iteration(ids["b"]), 0.9)
    assert tracker.get_best_child_iteration(driver, "loss") is None
    with pytest.raises(Unprocessable, match="mode"):
        tracker.get_best_child_iteration(driver, "accuracy", mode="best")


def test_zero_dimensional_tensors_are_numbers(tracker, iteration_id):
    import numpy as np
    import torch

    tracker.log_metrics(iteration_id, {"t": torch.tensor(0.25), "a": np.array(0.5), "f": np.float32(0.75)}, step=0)
    assert {m.key: m.value for m in tracker.get_metrics(iteration_id)} == {"t": 0.25, "a": 0.5, "f": 0.75}
    with pytest.raises(Unprocessable, match=r"metrics\['v'\]"):
        tracker.log_metrics(iteration_id, {"v": torch.tensor([0.1, 0.2])}, step=1)
