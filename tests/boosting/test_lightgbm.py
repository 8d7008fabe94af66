"""diary_integrations.lightgbm.DiaryCallback with real LightGBM: lgb.train (every round, parameters, the
model in LightGBM's text format and the registry), early stopping (no end callback in LightGBM: the run
still ends SUCCEEDED, with the stopping round recorded), and lgb.cv as a tree whose folds match the
cv booster's own evaluation and average to cv's result."""

from __future__ import annotations

import time

import numpy as np
import pytest

lgb = pytest.importorskip("lightgbm")

from boosting.ended import failed_at_once  # noqa: E402
from diary_integrations import IterationStatus, connect  # noqa: E402
from diary_integrations.lightgbm import DiaryCallback  # noqa: E402
from diary_integrations.registry import load_model  # noqa: E402

PARAMS = {"objective": "binary", "metric": ["binary_logloss", "auc"], "learning_rate": 0.2, "num_leaves": 7,
          "verbose": -1, "num_threads": 1}


def datasets(data):  # noqa: ANN001, ANN201
    X, y = data
    train = lgb.Dataset(X[:200], y[:200], free_raw_data=False)
    return train, lgb.Dataset(X[200:], y[200:], reference=train, free_raw_data=False)


def ended(tracker, iteration_id, timeout=30.0):  # noqa: ANN001, ANN201
    """The iteration once ended (an early-stopped training ends from a watcher, a moment after train)."""
    deadline = time.monotonic() + timeout
    while True:
        it = tracker.get_iteration(iteration_id)
        if it.ended or time.monotonic() > deadline:
            return it
        time.sleep(0.05)


def test_every_round_parameters_model_and_registry(sqlite_url, data):
    train, valid = datasets(data)
    cb = DiaryCallback("P", "lgb", uri=sqlite_url, sidecar=False, log_model=True, register_as="churn-lgb")
    history: dict = {}
    booster = lgb.train(PARAMS, train, 40, valid_sets=[train, valid], valid_names=["train", "valid"],
                        callbacks=[cb, lgb.record_evaluation(history)])
    tracker = connect(sqlite_url)
    it = tracker.get_iteration(cb.iteration_id)
    assert it.status is IterationStatus.SUCCEEDED
    stored = tracker.get_metrics(it.id, key="valid-binary_logloss")
    assert [m.step for m in stored] == list(range(40))
    assert [m.value for m in stored] == history["valid"]["binary_logloss"]
    assert {m.key for m in tracker.get_metrics(it.id)} == {
        "train-binary_logloss", "train-auc", "valid-binary_logloss", "valid-auc"}
    params = {p.key: p.value for p in tracker.get_parameters(it.id)}
    assert params["num_leaves"] == "7" and params["objective"] == "binary" and params["rounds"] == "40"
    assert float(params["best_score/valid-auc"]) == booster.best_score["valid"]["auc"]
    loaded = lgb.Booster(model_str=load_model("churn-lgb", tracker=tracker).decode())
    assert np.allclose(loaded.predict(data[0][:5]), booster.predict(data[0][:5]))


def test_early_stopping_ends_succeeded_with_the_stopping_round(sqlite_url, data):
    train, valid = datasets(data)
    cb = DiaryCallback("P", "lgb", uri=sqlite_url, sidecar=False, log_model=True)
    history: dict = {}
    booster = lgb.train({**PARAMS, "learning_rate": 0.5}, train, 500, valid_sets=[valid], valid_names=["valid"],
                        callbacks=[cb, lgb.early_stopping(3, verbose=False), lgb.record_evaluation(history)])
    tracker = connect(sqlite_url)
    it = ended(tracker, cb.iteration_id)
    assert it.status is IterationStatus.SUCCEEDED, it
    rounds = len(history["valid"]["auc"])
    assert rounds < 500 and booster.best_iteration < rounds
    assert [m.step for m in tracker.get_metrics(it.id, key="valid-auc")] == list(range(rounds))
    params = {p.key: p.value for p in tracker.get_parameters(it.id)}
    assert params["best_iteration"] == str(booster.best_iteration)
    assert float(params["best_score/valid-auc"]) == booster.best_score["valid"]["auc"]
    assert [r.name for r in tracker.get_resources(it.experiment_id)] == [f"iteration-{it.id}/model.txt"]


def test_cv_is_a_driver_with_a_child_per_fold(sqlite_url, data):
    X, y = data
    cb = DiaryCallback("P", "lgb-cv", uri=sqlite_url, sidecar=False)
    result = lgb.cv({**PARAMS, "metric": "binary_logloss"}, lgb.Dataset(X, y), 15, nfold=5, seed=1,
                    callbacks=[cb], return_cvbooster=True)
    tracker = connect(sqlite_url)
    driver = ended(tracker, cb.iteration_id)
    children = [ended(tracker, i) for i in cb.fold_iteration_ids]
    assert driver.status is IterationStatus.SUCCEEDED
    assert [c.name for c in children] == [f"fold {k}" for k in range(5)]
    assert {c.parent_iteration_id for c in children} == {driver.id}
    assert {c.status for c in children} == {IterationStatus.SUCCEEDED}
    for column in ("valid binary_logloss-mean", "valid binary_logloss-stdv"):
        assert [m.value for m in tracker.get_metrics(driver.id, key=column)] == result[column]
    per_fold = np.array([[m.value for m in tracker.get_metrics(c.id, key="valid-binary_logloss")]
                         for c in children])
    assert per_fold.shape == (5, 15)
    # Each child's last value is that fold's booster's own evaluation; their mean is cv's.
    assert list(per_fold[:, -1]) == [b.eval_valid()[0][2] for b in result["cvbooster"].boosters]
    assert per_fold.mean(axis=0) == pytest.approx(result["valid binary_logloss-mean"], abs=1e-12)


def raising_objective(nfold=1, fold=0, at=10):  # noqa: ANN001, ANN201
    """Logistic loss by hand that raises in `fold`'s update at round `at` (cv updates fold 0..n-1 in turn)."""
    calls = {"n": 0}

    def objective(predt, train_set):  # noqa: ANN001, ANN202
        if divmod(calls["n"], nfold) == (at, fold):
            raise ValueError(f"objective blew up in fold {fold} at round {at}")
        calls["n"] += 1
        p = 1.0 / (1.0 + np.exp(-predt))
        return p - train_set.get_label(), p * (1.0 - p)

    return objective


def test_a_caught_exception_ends_the_run_failed_with_its_text_at_once(sqlite_url, data):
    train, valid = datasets(data)
    cb = DiaryCallback("P", "lgb", uri=sqlite_url, sidecar=False)
    with pytest.raises(ValueError, match="blew up"):
        lgb.train({**PARAMS, "objective": raising_objective()}, train, 30, valid_sets=[valid], callbacks=[cb])
    tracker, it = failed_at_once(cb, sqlite_url, "ValueError: objective blew up in fold 0 at round 10")
    assert [m.step for m in tracker.get_metrics(it.id, key="valid_0-auc")] == list(range(10))


def test_cv_a_fold_that_raises_is_failed_the_others_stopped_the_driver_failed(sqlite_url, data):
    X, y = data
    cb = DiaryCallback("P", "lgb-cv", uri=sqlite_url, sidecar=False)
    with pytest.raises(ValueError):
        lgb.cv({**PARAMS, "metric": "binary_logloss", "objective": raising_objective(nfold=5, fold=3)},
               lgb.Dataset(X, y), 15, nfold=5, seed=1, callbacks=[cb])
    tracker = connect(sqlite_url)
    driver = tracker.get_iteration(cb.iteration_id)
    children = [tracker.get_iteration(i) for i in cb.fold_iteration_ids]
    assert (driver.status, driver.error_message) == (
        IterationStatus.FAILED, "fold 3 failed: ValueError: objective blew up in fold 3 at round 10")
    assert [(c.status, c.error_message) for c in children] == [
        (IterationStatus.KILLED, "stopped: fold 3 failed")] * 3 + [
        (IterationStatus.FAILED, "ValueError: objective blew up in fold 3 at round 10"),
        (IterationStatus.KILLED, "stopped: fold 3 failed")]
    for child in children:
        assert [m.step for m in tracker.get_metrics(child.id, key="valid-binary_logloss")] == list(range(10))


def test_a_returned_booster_carries_no_watch_and_pickles(sqlite_url, data):
    import pickle

    train, valid = datasets(data)
    cb = DiaryCallback("P", "lgb", uri=sqlite_url, sidecar=False)
    booster = lgb.train(PARAMS, train, 30, valid_sets=[valid], callbacks=[cb, lgb.early_stopping(2, verbose=False)])
    assert "update" not in vars(booster)
    assert pickle.loads(pickle.dumps(booster)).num_trees() == booster.num_trees()


def raising_callback(at=10):  # noqa: ANN001, ANN201
    """Somebody else's callback (not ours) that raises at round `at`."""
    def give_up(env):  # noqa: ANN001, ANN202
        if env.iteration == at:
            raise RuntimeError(f"another callback gave up at round {at}")

    return give_up


@pytest.mark.parametrize("order", ["before ours", "after ours"])
def test_another_callback_raising_ends_the_run_failed_with_its_text(sqlite_url, data, order):
    train, valid = datasets(data)
    cb = DiaryCallback("P", "lgb", uri=sqlite_url, sidecar=False)
    # LightGBM runs callbacks that set no `order` in the order given.
    callbacks = [raising_callback(), cb] if order == "before ours" else [cb, raising_callback()]
    with pytest.raises(RuntimeError, match="gave up"):
        lgb.train(PARAMS, train, 30, valid_sets=[valid], callbacks=callbacks)
    tracker, it = failed_at_once(cb, sqlite_url, "RuntimeError: another callback gave up at round 10")
    assert "in give_up" in it.traceback
    # Rounds before it once each; round 10 too when ours ran first in it.
    rounds = 10 if order == "before ours" else 11
    assert [m.step for m in tracker.get_metrics(it.id, key="valid_0-auc")] == list(range(rounds))


def test_cv_another_callback_raising_fails_the_driver_and_stops_the_folds(sqlite_url, data):
    X, y = data
    cb = DiaryCallback("P", "lgb-cv", uri=sqlite_url, sidecar=False)
    with pytest.raises(RuntimeError, match="gave up"):
        lgb.cv({**PARAMS, "metric": "binary_logloss"}, lgb.Dataset(X, y), 15, nfold=3, seed=1,
               callbacks=[raising_callback(at=5), cb])
    tracker = connect(sqlite_url)
    driver = tracker.get_iteration(cb.iteration_id)
    children = [tracker.get_iteration(i) for i in cb.fold_iteration_ids]
    message = "RuntimeError: another callback gave up at round 5"
    assert (driver.status, driver.error_message) == (IterationStatus.FAILED, message)
    assert [(c.status, c.error_message) for c in children] == [
        (IterationStatus.KILLED, f"stopped: the cross-validation failed: {message}")] * 3
    for run in (driver, *children):
        key = "valid binary_logloss-mean" if run is driver else "valid-binary_logloss"
        assert [m.step for m in tracker.get_metrics(run.id, key=key)] == list(range(5))


@pytest.mark.slow
def test_through_a_server_killed_and_restarted_mid_training(tmp_path, data):
    from faults.restartable import Outage, assert_each_step_once, killable_server

    train, valid = datasets(data)
    with killable_server(tmp_path) as server:
        cb = DiaryCallback("P", "lgb", uri=server.url, flush_interval=0.1)
        outage = Outage(server, kill=10, restart=30, before_kill=lambda: cb.run.open())

        def outages(env):  # noqa: ANN001, ANN202
            outage.at(env.iteration)

        lgb.train(PARAMS, train, 50, valid_sets=[valid], callbacks=[cb, outages])
        outage.check_done()
        tracker = connect(server.url)
        it = ended(tracker, cb.iteration_id)
        assert it.status is IterationStatus.SUCCEEDED
        for key in ("valid_0-auc", "valid_0-binary_logloss"):
            assert_each_step_once(tracker, it.id, key, range(50))
        assert cb.run.dropped == 0
