"""Frames of a real scikit-learn sweep (diary_integrations/frames.py): every number in them is the
tracker's own, read back with plain get_* calls, and the sweep's scores are scikit-learn's."""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.tree import DecisionTreeClassifier

from diary_integrations import search_frame, sweep_frame, to_frame
from diary_integrations.sklearn import DiaryCallback

pytestmark = pytest.mark.skipif(
    not hasattr(GridSearchCV, "set_callbacks"), reason="scikit-learn < 1.9 has no callback API"
)
GRID = {"max_depth": [1, 2, 3], "criterion": ["gini", "entropy"]}


@pytest.fixture
def sweep(uri, reader, iris):
    """A 6-candidate grid search tracked live; (tracker, driver id, the fitted search)."""
    X, y = iris
    cb = DiaryCallback(project="Iris", experiment="Tree sweep", uri=uri)
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), GRID, cv=2)
    search.set_callbacks(cb)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(X, y)
    return reader, cb.driver_iteration_id, search


def test_sweep_frame_equals_the_tracker(sweep):
    tracker, driver_id, search = sweep
    kids = tracker.get_child_iterations(driver_id)
    frame = sweep_frame(driver_id, tracker=tracker)
    assert list(frame["id"]) == [k.id for k in kids] and len(kids) == 6
    assert list(frame.columns[:7]) == ["id", "name", "status", "error", "parent", "created", "duration"]
    assert set(frame["status"]) == {"SUCCEEDED"} and set(frame["parent"]) == {driver_id}
    assert list(frame["name"]) == [k.name for k in kids]
    assert list(frame["created"]) == [pd.Timestamp(k.created_date) for k in kids]
    assert list(frame["duration"]) == pytest.approx([(k.end_date - k.created_date).total_seconds() for k in kids])
    # Parameters: numbers where every value is one, text otherwise.
    assert frame["params.max_depth"].dtype == np.int64 and frame["params.criterion"].dtype != np.int64
    for row, kid in zip(frame.itertuples(index=False), kids, strict=True):
        stored = {p.key: p.value for p in tracker.get_parameters(kid.id)}
        assert str(row[frame.columns.get_loc("params.max_depth")]) == stored["max_depth"]
        assert row[frame.columns.get_loc("params.criterion")] == stored["criterion"]
        latest: dict[str, float] = {}
        for point in sorted(tracker.get_metrics(kid.id), key=lambda m: (m.step, m.id)):
            latest[point.key] = point.value
        shown = {c[len("metrics."):]: row[n] for n, c in enumerate(frame.columns) if c.startswith("metrics.")}
        assert shown == latest
    # And the scores are scikit-learn's own.
    by_params = {
        (r["params.criterion"], r["params.max_depth"]): r["metrics.mean_test_score"] for _, r in frame.iterrows()
    }
    for params, score in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"], strict=True):
        assert by_params[(params["criterion"], params["max_depth"])] == pytest.approx(score)


def test_search_frame_history_and_polars(sweep):
    tracker, driver_id, search = sweep
    experiment = tracker.get_iteration(driver_id).experiment_id
    best = search_frame(experiment, f"parent_iteration_id = {driver_id} and params.criterion = 'entropy'",
                        ["metrics.mean_test_score DESC"], tracker=tracker)
    assert list(best["params.criterion"]) == ["entropy"] * 3
    scores = list(best["metrics.mean_test_score"])
    assert scores == sorted(scores, reverse=True)
    top = search_frame(experiment, "depth = 1", ["metrics.mean_test_score DESC"], max_results=2, tracker=tracker)
    everyone = sweep_frame(driver_id, tracker=tracker)["metrics.mean_test_score"]
    assert len(top) == 2 and top["metrics.mean_test_score"].iloc[0] == everyone.max()
    # The long frame of a series: every point, as get_metrics has them.
    kids = tracker.get_child_iterations(driver_id)
    long = to_frame(kids, history=["test_score", "fold_time"], tracker=tracker)
    assert list(long.columns) == ["id", "key", "step", "value"]
    expected = [
        (k.id, key, m.step, m.value) for key in ("test_score", "fold_time") for k in kids
        for m in tracker.get_metrics(k.id, key=key)
    ]
    assert list(long.itertuples(index=False, name=None)) == expected and len(expected) >= 12
    # polars: the same numbers.
    wide = sweep_frame(driver_id, tracker=tracker, backend="polars")
    assert isinstance(wide, pl.DataFrame)
    assert wide["metrics.mean_test_score"].to_list() == list(everyone)
    assert wide["params.max_depth"].dtype == pl.Int64


def test_frames_of_nothing_and_of_missing_values(sqlite_uri):
    from diary_integrations import ExperimentStatus, connect

    tracker = connect(sqlite_uri)
    assert len(to_frame([], tracker=tracker)) == 0
    experiment = tracker.create_experiment(tracker.create_project("p").id, ExperimentStatus.IN_PROGRESS, "e").id
    a = tracker.create_iteration(experiment, parameters={"lr": "0.1", "opt": "adam"}).id
    b = tracker.create_iteration(experiment, parameters={"lr": "1e-3", "layers": 2}).id
    tracker.log_metrics(a, {"loss": math.nan})
    frame = search_frame(experiment, tracker=tracker)
    assert list(frame["params.lr"]) == [0.1, 0.001]  # floats where every value parses
    assert frame["params.layers"].isna().tolist() == [True, False]  # a missing value, so not int
    assert frame["params.opt"].tolist()[0] == "adam" and frame["duration"].isna().all()  # still running
    assert math.isnan(frame["metrics.loss"].iloc[0]) and math.isnan(frame["metrics.loss"].iloc[1])
    assert b in set(frame["id"])
    tracker.close()


def test_a_missing_pandas_names_the_extra(sqlite_uri, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # what an environment without pandas gives import
    with pytest.raises(ImportError, match=r"diary-integrations\[pandas\]"):
        to_frame([])
    with pytest.raises(ValueError, match="backend"):
        to_frame([], backend="arrow")
