"""The fallback path: `tracked()` builds the same tree from `cv_results_` after the fit (scikit-learn
without callbacks, or searches without callback support), and `tracked_cross_validate`."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from sk_helpers import Picky, as_text, children, latest, marked, params, running, series
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold, ParameterGrid
from sklearn.tree import DecisionTreeClassifier

from diary_integrations import IterationStatus, Unprocessable, connect
from diary_integrations.sklearn import (
    DiaryCallback,
    TrackingWarning,
    callbacks_supported,
    fallback,
    tracked,
    tracked_cross_validate,
)

LIBLINEAR = "ValueError: The 'liblinear' solver does not support multiclass classification"
GRID = [{"solver": ["lbfgs"], "C": [0.1, 1.0]}, {"solver": ["liblinear"], "C": [1.0]}]


class OldStyleSearch(GridSearchCV):
    """A custom search written for scikit-learn < 1.9: its `_run_search` takes no callback context."""

    def _run_search(self, evaluate_candidates):
        evaluate_candidates(ParameterGrid(self.param_grid))


def quiet_fit(search, X, y):
    """Fit without scikit-learn's warnings, but turn a tracking error into a test failure."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", TrackingWarning)
        return search.fit(X, y)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_tracked_without_callbacks_builds_the_tree(uri, reader, iris, n_jobs, monkeypatch):
    monkeypatch.setattr(fallback, "USE_CALLBACKS", False)  # as on scikit-learn < 1.9
    X, y = iris
    search = tracked(GridSearchCV(LogisticRegression(max_iter=500), GRID, cv=3, n_jobs=n_jobs),
                     project="Fraud detection", experiment="fallback", uri=uri)
    assert search.fit.callback is None and not hasattr(search, "_skl_callbacks")
    quiet_fit(search, X, y)
    driver = reader.get_iteration(search.fit.driver_iteration_id)
    assert driver.status is IterationStatus.SUCCEEDED
    kids = children(reader, driver.id)
    results = search.cv_results_
    assert len(kids) == 3
    for kid, candidate in zip(kids, results["params"], strict=True):
        assert params(reader, kid.id) == {k: as_text(v) for k, v in candidate.items()}
        liblinear = candidate["solver"] == "liblinear"
        assert kid.status is (IterationStatus.FAILED if liblinear else IterationStatus.SUCCEEDED)
        assert kid.error_message.startswith(LIBLINEAR) if liblinear else kid.error_message == ""
        assert len(series(reader, kid.id, "test_score")) == 3
    failed = [k for k in kids if k.status is IterationStatus.FAILED][0]
    assert "fits failed with" in failed.traceback and "Traceback" in failed.traceback
    best = {k[5:]: v for k, v in params(reader, driver.id).items() if k.startswith("best_")}
    assert best == {k: as_text(v) for k, v in search.best_params_.items()}
    assert latest(reader, driver.id)["best_score"] == pytest.approx(search.best_score_)
    assert running(reader, driver.experiment_id) == []


HAS_CALLBACKS = hasattr(GridSearchCV, "set_callbacks")


@pytest.mark.skipif(not HAS_CALLBACKS, reason="scikit-learn < 1.9 has no callback API")
def test_both_paths_build_the_same_tree(sqlite_uri, iris):
    X, y = iris

    def shape(search):
        tracker = connect(sqlite_uri)
        kids = children(tracker, search.fit.driver_iteration_id)
        return [(k.status, k.error_message[:60], params(tracker, k.id), series(tracker, k.id, "test_score"))
                for k in kids]

    live = tracked(GridSearchCV(LogisticRegression(max_iter=500), GRID, cv=3), project="P", experiment="E",
                   uri=sqlite_uri)
    assert isinstance(live.fit.callback, DiaryCallback)
    posthoc = tracked(GridSearchCV(LogisticRegression(max_iter=500), GRID, cv=3), project="P", experiment="E",
                      uri=sqlite_uri, use_callbacks=False)
    quiet_fit(live, X, y)
    quiet_fit(posthoc, X, y)
    assert shape(live) == shape(posthoc)
    again = tracked(live, project="P", experiment="E", uri=sqlite_uri)  # re-tracking replaces, never doubles
    assert again._skl_callbacks == [again.fit.callback]
    assert tracked(again, project="P", experiment="E", uri=sqlite_uri, use_callbacks=False).fit.callback is None
    assert not hasattr(again, "_skl_callbacks")


def test_search_without_callback_support_falls_back(sqlite_uri, iris):
    X, y = iris
    search = OldStyleSearch(DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2, 3]}, cv=2)
    assert not callbacks_supported(search)
    with pytest.raises(Unprocessable, match="use_callbacks"):
        tracked(search, project="P", experiment="E", uri=sqlite_uri, use_callbacks=True)
    search = tracked(search, project="P", experiment="E", uri=sqlite_uri)
    quiet_fit(search, X, y)
    tracker = connect(sqlite_uri)
    kids = children(tracker, search.fit.driver_iteration_id)
    assert [params(tracker, k.id)["max_depth"] for k in kids] == ["1", "2", "3"]
    assert all(k.status is IterationStatus.SUCCEEDED for k in kids)


def test_tracked_raise_fails_driver_without_children(sqlite_uri, iris):
    X, y = iris
    search = tracked(GridSearchCV(LogisticRegression(max_iter=500), GRID, cv=2, error_score="raise"),
                     project="P", experiment="E", uri=sqlite_uri, use_callbacks=False)
    with pytest.raises(ValueError, match="liblinear"):
        quiet_fit(search, X, y)
    tracker = connect(sqlite_uri)
    driver = tracker.get_iteration(search.fit.driver_iteration_id)
    assert driver.status is IterationStatus.FAILED and driver.error_message.startswith(LIBLINEAR)
    assert children(tracker, driver.id) == []


def test_tracked_search_pickles(sqlite_uri, iris):
    X, y = iris
    for use_callbacks in (True, False) if HAS_CALLBACKS else (False,):
        search = tracked(GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [2, 3]}, cv=2),
                         project="P", experiment="E", uri=sqlite_uri, use_callbacks=use_callbacks)
        quiet_fit(search, X, y)
        loaded = pickle.loads(pickle.dumps(search))
        assert (loaded.predict(X) == search.predict(X)).all()
        first = loaded.fit.driver_iteration_id
        quiet_fit(loaded, X, y)  # the loaded search is still tracked
        assert loaded.fit.driver_iteration_id not in (None, first)


def test_cross_validate_has_a_child_per_fold(uri, reader, iris):
    X, y = iris
    out = tracked_cross_validate(DecisionTreeClassifier(max_depth=3, random_state=0), X, y, cv=4,
                                 return_train_score=True, project="P", experiment="cv", uri=uri)
    assert sorted(out) == ["fit_time", "score_time", "test_score", "train_score"]
    driver = reader.get_iteration(out.driver_iteration_id)
    assert driver.status is IterationStatus.SUCCEEDED
    kids = children(reader, driver.id)
    assert [params(reader, k.id) for k in kids] == [{"fold": str(f)} for f in range(4)]
    assert [latest(reader, k.id)["test_score"] for k in kids] == pytest.approx(out["test_score"])
    assert all(k.status is IterationStatus.SUCCEEDED for k in kids)
    summary = latest(reader, driver.id)
    assert summary["mean_test_score"] == pytest.approx(np.mean(out["test_score"]))
    assert params(reader, driver.id)["cv"] == "4"


def test_cross_validate_failed_folds(sqlite_uri, iris):
    X, y = iris
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = tracked_cross_validate(Picky(strict=True), marked(X), y, cv=KFold(3), project="P",
                                     experiment="cv", uri=sqlite_uri)
    tracker = connect(sqlite_uri)
    kids = children(tracker, out.driver_iteration_id)
    assert [k.status for k in kids] == [IterationStatus.SUCCEEDED, IterationStatus.FAILED, IterationStatus.FAILED]
    assert kids[1].error_message == "ValueError: picky: sample 0 is in the training set"
    assert latest(tracker, out.driver_iteration_id)["n_failed_folds"] == 2


def test_cross_validate_that_raises_fails_driver(sqlite_uri, iris):
    X, y = iris
    with pytest.raises(ValueError, match="All the 2 fits failed"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tracked_cross_validate(LogisticRegression(solver="liblinear"), X, y, cv=2, project="P",
                               experiment="cv", uri=sqlite_uri)
    tracker = connect(sqlite_uri)
    (driver,) = tracker.get_iterations(tracker.get_experiment_by_name(
        tracker.get_project_by_name("P").id, "cv").id)
    assert driver.status is IterationStatus.FAILED
    assert driver.error_message.startswith("ValueError: All the 2 fits failed")


def test_tracked_refuses_bad_input(tmp_path):
    uri = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(Unprocessable) as err:
        tracked(GridSearchCV(DecisionTreeClassifier(), {"max_depth": [1]}), project="", experiment="E", uri=uri)
    assert err.value.field == "project"
    with pytest.raises(Unprocessable) as err:
        tracked(DecisionTreeClassifier(), project="P", experiment="E", uri=uri)
    assert err.value.field == "search"
    assert not (tmp_path / "x.db").exists()
