"""DiaryCallback on real searches (scikit-learn >= 1.9): the tree a fit leaves behind, with n_jobs=1
and n_jobs=2, against a SQLite file and a live tracking server."""

from __future__ import annotations

import math
import pickle
import warnings

import numpy as np
import pytest
from scipy.stats import loguniform
from sk_helpers import LIVE_SEEN, LiveProbe, Picky, as_text, children, latest, marked, params, running, series
from sklearn.exceptions import FitFailedWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold, RandomizedSearchCV
from sklearn.tree import DecisionTreeClassifier

from diary_integrations import ExperimentStatus, IterationStatus, Unprocessable, connect
from diary_integrations.sklearn import DiaryCallback, TrackingWarning

pytestmark = pytest.mark.skipif(
    not hasattr(GridSearchCV, "set_callbacks"), reason="scikit-learn < 1.9 has no callback API"
)

LIBLINEAR = "ValueError: The 'liblinear' solver does not support multiclass classification"
# Two valid candidates and one that cannot fit a 3-class problem.
GRID = [{"solver": ["lbfgs"], "C": [0.1, 1.0]}, {"solver": ["liblinear"], "C": [1.0]}]


def fit_quietly(search, X, y):
    """Fit without scikit-learn's warnings, but turn a tracking error into a test failure."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", TrackingWarning)
        return search.fit(X, y)


def check_tree(tracker, search, cb, n_splits):
    """The tree matches the fitted search exactly: one child per candidate, scores by fold, statuses."""
    driver = tracker.get_iteration(cb.driver_iteration_id)
    assert driver.status is IterationStatus.SUCCEEDED and driver.parent_iteration_id is None
    results = search.cv_results_
    kids = children(tracker, driver.id)
    assert len(kids) == len(results["params"])  # no duplicates, none lost
    assert sorted(k.notes.split(":")[0] for k in kids) == sorted(f"candidate {i}" for i in range(len(kids)))
    by_candidate = {int(k.notes.split(":")[0].split()[-1]): k for k in kids}
    for i, candidate in enumerate(results["params"]):
        kid = by_candidate[i]
        assert {k: v for k, v in params(tracker, kid.id).items()} == {k: as_text(v) for k, v in candidate.items()}
        scores = series(tracker, kid.id, "test_score")
        assert [s for s, _ in scores] == list(range(n_splits))
        expected = [results[f"split{f}_test_score"][i] for f in range(n_splits)]
        assert np.allclose([v for _, v in scores], expected, equal_nan=True)
        last = latest(tracker, kid.id)
        assert last["rank_test_score"] == results["rank_test_score"][i]
        assert "mean_fit_time" in last and "std_test_score" in last and "mean_score_time" in last
    dparams = params(tracker, driver.id)
    assert {k[5:]: v for k, v in dparams.items() if k.startswith("best_")} == {
        k: as_text(v) for k, v in search.best_params_.items()
    }
    assert dparams["search"] == type(search).__name__ and dparams["n_jobs"] == str(search.n_jobs)
    assert "estimator" in dparams and dparams["cv"] == str(search.cv)
    summary = latest(tracker, driver.id)
    assert summary["best_score"] == pytest.approx(search.best_score_)
    assert summary["best_index"] == search.best_index_ and summary["refit_time"] > 0
    assert running(tracker, driver.experiment_id) == []
    return by_candidate


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_grid_search_invalid_candidate(uri, reader, iris, n_jobs):
    X, y = iris
    cb = DiaryCallback(project="Fraud detection", experiment="LR sweep", uri=uri)
    search = GridSearchCV(LogisticRegression(max_iter=500), GRID, cv=3, n_jobs=n_jobs)
    search.set_callbacks(cb)
    with pytest.warns(FitFailedWarning):
        fit_quietly_but_fitfailed(search, X, y)
    kids = check_tree(reader, search, cb, 3)
    failed = [k for k in kids.values() if k.status is IterationStatus.FAILED]
    assert [params(reader, k.id)["solver"] for k in failed] == ["liblinear"]
    assert failed[0].error_message.startswith(LIBLINEAR)
    assert "Traceback" in failed[0].traceback and "folds 0, 1, 2" in failed[0].traceback
    assert failed[0].notes.endswith("all 3 folds failed")
    assert [k.status for k in kids.values() if k not in failed] == [IterationStatus.SUCCEEDED] * 2
    assert latest(reader, cb.driver_iteration_id)["n_failed_candidates"] == 1


def fit_quietly_but_fitfailed(search, X, y):
    """Silence everything except the FitFailedWarning the test expects."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("always", FitFailedWarning)
        warnings.simplefilter("error", TrackingWarning)
        return search.fit(X, y)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_randomized_search(uri, reader, iris, n_jobs):
    X, y = iris
    cb = DiaryCallback(project="Fraud detection", experiment="LR random", uri=uri)
    space = {"solver": ["lbfgs", "liblinear"], "C": loguniform(0.01, 10)}
    search = RandomizedSearchCV(LogisticRegression(max_iter=500), space, n_iter=5, cv=2, n_jobs=n_jobs,
                                random_state=3)
    search.set_callbacks(cb)
    fit_quietly(search, X, y)
    kids = check_tree(reader, search, cb, 2)
    for i, candidate in enumerate(search.cv_results_["params"]):
        expected = IterationStatus.FAILED if candidate["solver"] == "liblinear" else IterationStatus.SUCCEEDED
        assert kids[i].status is expected
        if expected is IterationStatus.FAILED:
            assert kids[i].error_message.startswith(LIBLINEAR)
    assert any(k.status is IterationStatus.FAILED for k in kids.values())
    assert params(reader, cb.driver_iteration_id)["distributions.C"].startswith("loguniform(")


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_error_score_raise_fails_driver(uri, reader, iris, n_jobs):
    X, y = iris
    cb = DiaryCallback(project="Fraud detection", experiment="raise", uri=uri)
    search = GridSearchCV(LogisticRegression(max_iter=500), GRID, cv=3, n_jobs=n_jobs, error_score="raise")
    search.set_callbacks(cb)
    with pytest.raises(ValueError, match="liblinear"):
        fit_quietly(search, X, y)
    driver = reader.get_iteration(cb.driver_iteration_id)
    assert driver.status is IterationStatus.FAILED and driver.error_message.startswith(LIBLINEAR)
    assert "Traceback" in driver.traceback
    assert running(reader, driver.experiment_id) == []
    failed = [k for k in children(reader, driver.id) if k.status is IterationStatus.FAILED]
    assert len(failed) == 1 and failed[0].error_message.startswith(LIBLINEAR)
    assert params(reader, failed[0].id)["solver"] == "liblinear"


def test_all_fits_failing_fails_driver(uri, reader, iris):
    X, y = iris
    cb = DiaryCallback(project="Fraud detection", experiment="all fail", uri=uri)
    search = GridSearchCV(LogisticRegression(solver="liblinear"), {"C": [0.1, 1.0]}, cv=2)
    search.set_callbacks(cb)
    with pytest.raises(ValueError, match="All the 4 fits failed"):
        fit_quietly(search, X, y)
    driver = reader.get_iteration(cb.driver_iteration_id)
    assert driver.status is IterationStatus.FAILED
    assert driver.error_message.startswith("ValueError: All the 4 fits failed")
    kids = children(reader, driver.id)
    assert len(kids) == 2 and all(k.status is IterationStatus.FAILED for k in kids)
    assert all(k.error_message.startswith(LIBLINEAR) for k in kids)


def test_partly_failed_candidate_names_its_folds(sqlite_uri, iris):
    X, y = iris
    cb = DiaryCallback(project="P", experiment="partial", uri=sqlite_uri)
    search = GridSearchCV(Picky(), {"strict": [False, True]}, cv=KFold(3), scoring="accuracy")
    search.set_callbacks(cb)
    fit_quietly(search, marked(X), y)
    tracker = connect(sqlite_uri)
    loose, strict = children(tracker, cb.driver_iteration_id)
    assert loose.status is IterationStatus.SUCCEEDED
    assert strict.status is IterationStatus.FAILED
    assert strict.error_message == "ValueError: picky: sample 0 is in the training set"
    assert strict.notes == "candidate 1: folds 1, 2 of 3 failed; the others succeeded"
    scores = series(tracker, strict.id, "test_score")
    assert not math.isnan(scores[0][1]) and all(math.isnan(v) for _, v in scores[1:])


def test_keyboard_interrupt_kills(sqlite_uri, iris):
    X, y = iris
    cb = DiaryCallback(project="P", experiment="interrupt", uri=sqlite_uri)
    search = GridSearchCV(Picky(), {"interrupt": [False, True]}, cv=KFold(2))
    search.set_callbacks(cb)
    with pytest.raises(KeyboardInterrupt), warnings.catch_warnings():
        warnings.simplefilter("error", TrackingWarning)  # every hook did its work without a tracking error
        search.fit(marked(X), y)
    tracker = connect(sqlite_uri)
    driver = tracker.get_iteration(cb.driver_iteration_id)
    assert driver.status is IterationStatus.KILLED and driver.error_message == "KeyboardInterrupt"
    done, interrupted = children(tracker, driver.id)
    assert done.status is IterationStatus.SUCCEEDED  # both its folds ran before the interrupt
    assert interrupted.status is IterationStatus.KILLED
    assert interrupted.error_message == "the search stopped before this candidate finished: KeyboardInterrupt"
    assert running(tracker, driver.experiment_id) == []


def test_children_are_running_while_their_folds_run(sqlite_uri, iris):
    X, y = iris
    cb = DiaryCallback(project="P", experiment="live", uri=sqlite_uri)
    LIVE_SEEN.clear()
    search = GridSearchCV(Picky(probe=LiveProbe(sqlite_uri, cb)), {"max_depth": [1, 2, 3]}, cv=KFold(2))
    search.set_callbacks(cb)
    fit_quietly(search, marked(X), y)
    folds = [("RUNNING", f"candidate {c}") for c in range(3) for _ in range(2)]
    # The last call is the refit: children are finished from cv_results_ once the whole fit ends.
    seen = list(LIVE_SEEN)
    assert seen == [*folds, ("RUNNING", f"candidate {search.best_index_}")]
    ended = children(connect(sqlite_uri), cb.driver_iteration_id)
    assert [c.status for c in ended] == [IterationStatus.SUCCEEDED] * 3


def test_fold_children(sqlite_uri, iris):
    X, y = iris
    cb = DiaryCallback(project="P", experiment="folds", uri=sqlite_uri, children="fold")
    search = GridSearchCV(Picky(), {"strict": [False, True]}, cv=KFold(3))
    search.set_callbacks(cb)
    fit_quietly(search, marked(X), y)
    tracker = connect(sqlite_uri)
    loose, strict = children(tracker, cb.driver_iteration_id)
    for kid in (loose, strict):
        folds = children(tracker, kid.id)
        assert [params(tracker, f.id) for f in folds] == [{"fold": str(k)} for k in range(3)]
    statuses = [f.status for f in children(tracker, strict.id)]
    assert statuses == [IterationStatus.SUCCEEDED, IterationStatus.FAILED, IterationStatus.FAILED]
    failed_fold = children(tracker, strict.id)[1]
    assert failed_fold.error_message == "ValueError: picky: sample 0 is in the training set"
    first = children(tracker, loose.id)[0]
    assert latest(tracker, first.id)["test_score"] == search.cv_results_["split0_test_score"][0]


def test_max_children_keeps_the_best(sqlite_uri, iris):
    X, y = iris
    cb = DiaryCallback(project="P", experiment="top2", uri=sqlite_uri, max_children=2)
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2, 3, 4]}, cv=3)
    search.set_callbacks(cb)
    fit_quietly(search, X, y)
    tracker = connect(sqlite_uri)
    kids = children(tracker, cb.driver_iteration_id)
    ranks = search.cv_results_["rank_test_score"]
    best_two = sorted(range(4), key=lambda i: (ranks[i], i))[:2]
    assert sorted(int(params(tracker, k.id)["max_depth"]) for k in kids) == sorted(
        search.cv_results_["params"][i]["max_depth"] for i in best_two
    )
    assert latest(tracker, cb.driver_iteration_id)["n_candidates"] == 4


def test_halving_search(uri, reader, iris):
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingGridSearchCV

    X, y = iris
    cb = DiaryCallback(project="P", experiment="halving", uri=uri)
    search = HalvingGridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2, 3, 4, 5, 6]},
                                 cv=2, factor=2, min_resources=30, random_state=0)
    search.set_callbacks(cb)
    fit_quietly(search, X, y)
    results = search.cv_results_
    kids = children(reader, cb.driver_iteration_id)
    assert len(kids) == len(results["params"]) > 6  # one child per (iteration, candidate)
    seen = sorted((int(params(reader, k.id)["halving_iter"]), int(params(reader, k.id)["max_depth"]),
                   int(params(reader, k.id)["n_resources"])) for k in kids)
    assert seen == sorted(zip(results["iter"].tolist(), [p["max_depth"] for p in results["params"]],
                              results["n_resources"].tolist(), strict=True))
    assert all(k.status is IterationStatus.SUCCEEDED for k in kids)
    assert params(reader, cb.driver_iteration_id)["best_max_depth"] == str(search.best_params_["max_depth"])


def test_fitted_search_pickles(sqlite_uri, iris, tmp_path):
    X, y = iris
    cb = DiaryCallback(project="P", experiment="pickle", uri=sqlite_uri)
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [2, 3]}, cv=2, n_jobs=2)
    search.set_callbacks(cb)
    fit_quietly(search, X, y)
    loaded = pickle.loads(pickle.dumps(search))
    assert (loaded.predict(X) == search.predict(X)).all()
    assert pickle.loads(pickle.dumps(search.best_estimator_)).get_params() == search.best_estimator_.get_params()
    (copy,) = loaded._skl_callbacks  # inert: options only, no address of the finished search's event sink
    assert copy._routes == {} and copy._runs == {} and copy.driver_iteration_id == cb.driver_iteration_id
    fit_quietly(loaded, X, y)  # and a loaded search still tracks its next fit
    assert copy.driver_iteration_id != cb.driver_iteration_id


def test_tracking_errors_do_not_change_results(sqlite_uri, iris):
    X, y = iris
    tracker = connect(sqlite_uri)
    project_id, _ = tracker.create_project("P")
    experiment_id, _ = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "closed")
    tracker.update_experiment(experiment_id, status=ExperimentStatus.FINISHED)
    cb = DiaryCallback(project="P", experiment="closed", uri=sqlite_uri)
    grid = {"max_depth": [2, 3]}
    plain = fit_quietly(GridSearchCV(DecisionTreeClassifier(random_state=0), grid, cv=2), X, y)
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), grid, cv=2)
    search.set_callbacks(cb)
    with pytest.warns(TrackingWarning, match="IN_PROGRESS"):
        search.fit(X, y)
    assert search.best_params_ == plain.best_params_
    assert np.array_equal(search.cv_results_["mean_test_score"], plain.cv_results_["mean_test_score"])
    assert tracker.get_iterations(experiment_id) == [] and cb.driver_iteration_id is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"project": ""}, "project"),
        ({"experiment": None}, "experiment"),
        ({"children": "grandchildren"}, "children"),
        ({"max_children": -1}, "max_children"),
        ({"parent_iteration_id": "seven"}, "parent_iteration_id"),
    ],
)
def test_bad_options_are_refused(kwargs, field, tmp_path):
    options = {"project": "P", "experiment": "E", "uri": f"sqlite:///{tmp_path / 'x.db'}", **kwargs}
    with pytest.raises(Unprocessable) as err:
        DiaryCallback(**options)
    assert err.value.field == field and field in str(err.value)
    assert not (tmp_path / "x.db").exists()  # nothing written


def test_nested_under_a_parent_iteration(sqlite_uri, iris):
    X, y = iris
    tracker = connect(sqlite_uri)
    project_id, _ = tracker.create_project("P")
    experiment_id, _ = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "E")
    outer, _ = tracker.create_iteration(experiment_id)
    cb = DiaryCallback(project="P", experiment="E", uri=sqlite_uri, parent_iteration_id=outer)
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [2, 3]}, cv=2)
    search.set_callbacks(cb)
    fit_quietly(search, X, y)
    assert [c.id for c in tracker.get_child_iterations(outer)] == [cb.driver_iteration_id]
    assert len(tracker.get_child_iterations(cb.driver_iteration_id)) == 2


def test_invalid_parameter_fails_with_its_error(sqlite_uri, iris):
    X, y = iris
    cb = DiaryCallback(project="P", experiment="invalid", uri=sqlite_uri)
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), {"min_samples_split": [2, 1]}, cv=2)
    search.set_callbacks(cb)
    fit_quietly(search, X, y)
    tracker = connect(sqlite_uri)
    ok, bad = children(tracker, cb.driver_iteration_id)
    assert ok.status is IterationStatus.SUCCEEDED and bad.status is IterationStatus.FAILED
    assert bad.error_message.startswith("InvalidParameterError: The 'min_samples_split' parameter")


def test_many_candidates_in_parallel_one_child_each(uri, reader, iris):
    X, y = iris
    cb = DiaryCallback(project="P", experiment="parallel", uri=uri)
    grid = {"max_depth": [1, 2, 3, 4, 5, 6], "min_samples_leaf": [1, 2, 4, 8]}
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), grid, cv=3, n_jobs=2)
    search.set_callbacks(cb)
    fit_quietly(search, X, y)
    kids = check_tree(reader, search, cb, 3)
    assert len(kids) == 24 and all(k.status is IterationStatus.SUCCEEDED for k in kids.values())
    assert all(len(series(reader, k.id, "fold_time")) == 3 for k in kids.values())  # every fold's events arrived


UNREACHABLE_SCRIPT = """
from sklearn.datasets import load_iris
from sklearn.model_selection import GridSearchCV
from sklearn.tree import DecisionTreeClassifier
from diary_integrations.sklearn import DiaryCallback

X, y = load_iris(return_X_y=True)
search = GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2, 3]}, cv=3)
search.set_callbacks(DiaryCallback("P", "E", uri="http://127.0.0.1:1"))
search.fit(X, y)
print("best", search.best_params_)
"""


@pytest.mark.parametrize("debug", [False, True])
def test_unreachable_tracker_gives_one_short_warning(tmp_path, debug):
    """A user's stderr gets one line saying what failed and why, not the transport's chained traceback
    (about 80 lines); the traceback is there for whoever turns on DEBUG logging."""
    import subprocess
    import sys

    script = UNREACHABLE_SCRIPT
    if debug:
        script = "import logging; logging.basicConfig(level=logging.DEBUG)\n" + script
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0 and "best {'max_depth': 3}" in done.stdout, done.stderr
    mine = [line for line in done.stderr.splitlines() if "diary" in line]
    if debug:
        assert "Traceback (most recent call last)" in done.stderr and "ConnectError" in done.stderr
        return
    assert "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) <= 3, done.stderr  # the warning and the source line it points at
    [warning] = mine
    assert "TrackingWarning: diary: could not start tracking GridSearchCV.fit: TransportError: " in warning
    assert "127.0.0.1:1" in warning and "Connection refused" in warning
