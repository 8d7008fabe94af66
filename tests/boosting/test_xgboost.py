"""diary_integrations.xgboost.DiaryCallback with real XGBoost: xgb.train (every round, parameters, best
iteration, the model in UBJ and the registry), xgb.cv as a tree whose folds average to cv's frame, and
a training through a tracking server that is killed and restarted mid-run."""

from __future__ import annotations

import numpy as np
import pytest

xgb = pytest.importorskip("xgboost")

from boosting.ended import failed_at_once  # noqa: E402
from diary_integrations import IterationStatus, connect  # noqa: E402
from diary_integrations.registry import load_model  # noqa: E402
from diary_integrations.tracker.errors import Unprocessable  # noqa: E402
from diary_integrations.xgboost import DiaryCallback  # noqa: E402

PARAMS = {"max_depth": 2, "eta": 0.3, "objective": "binary:logistic", "eval_metric": ["logloss", "auc"],
          "nthread": 1}


def train(cb, data, rounds=50, **kwargs):  # noqa: ANN001, ANN201
    X, y = data
    dtrain, dvalid = xgb.DMatrix(X[:200], y[:200]), xgb.DMatrix(X[200:], y[200:])
    return xgb.train(PARAMS, dtrain, rounds, evals=[(dtrain, "train"), (dvalid, "validation")],
                     callbacks=[cb], verbose_eval=False, **kwargs)


def test_every_round_parameters_model_and_registry(sqlite_url, data):
    cb = DiaryCallback("P", "xgb", uri=sqlite_url, sidecar=False, log_model=True, register_as="churn-xgb",
                       params={"data": {"rows": 200}})
    booster = train(cb, data)
    tracker = connect(sqlite_url)
    it = tracker.get_iteration(cb.iteration_id)
    assert it.status is IterationStatus.SUCCEEDED and it.parent_iteration_id is None
    history = {}
    xgb.train(PARAMS, xgb.DMatrix(data[0][:200], data[1][:200]), 50,
              evals=[(xgb.DMatrix(data[0][200:], data[1][200:]), "validation")], evals_result=history,
              verbose_eval=False)
    stored = tracker.get_metrics(it.id, key="validation-logloss")
    assert [m.step for m in stored] == list(range(50))
    assert [m.value for m in stored] == pytest.approx(history["validation"]["logloss"])
    assert {"train-logloss", "train-auc", "validation-auc"} <= {m.key for m in tracker.get_metrics(it.id)}
    params = {p.key: p.value for p in tracker.get_parameters(it.id)}
    assert params["max_depth"] == "2" and params["objective"] == "binary:logistic"
    assert params["eval_metric"] == "logloss,auc" and params["data/rows"] == "200" and params["rounds"] == "50"
    loaded = xgb.Booster()
    loaded.load_model(bytearray(load_model("churn-xgb", tracker=tracker)))  # UBJ, XGBoost's own format
    probe = xgb.DMatrix(data[0][:5])
    assert np.allclose(loaded.predict(probe), booster.predict(probe))


def test_early_stopping_records_best_iteration_and_every_round(sqlite_url, data):
    cb = DiaryCallback("P", "xgb", uri=sqlite_url, sidecar=False)
    booster = train(cb, data, rounds=200, early_stopping_rounds=5)
    tracker = connect(sqlite_url)
    params = {p.key: p.value for p in tracker.get_parameters(cb.iteration_id)}
    assert int(params["best_iteration"]) == booster.best_iteration
    assert float(params["best_score"]) == pytest.approx(booster.best_score)
    rounds = booster.num_boosted_rounds()
    assert rounds < 200 and params["rounds"] == str(rounds)
    assert [m.step for m in tracker.get_metrics(cb.iteration_id, key="validation-auc")] == list(range(rounds))


def test_cv_is_a_driver_with_a_child_per_fold(sqlite_url, data):
    X, y = data
    cb = DiaryCallback("P", "xgb-cv", uri=sqlite_url, sidecar=False)
    frame = xgb.cv({**PARAMS, "eval_metric": "logloss"}, xgb.DMatrix(X, y), 20, nfold=5, seed=1, callbacks=[cb])
    tracker = connect(sqlite_url)
    driver = tracker.get_iteration(cb.iteration_id)
    children = [tracker.get_iteration(i) for i in cb.fold_iteration_ids]
    assert driver.status is IterationStatus.SUCCEEDED
    assert [c.name for c in children] == [f"fold {k}" for k in range(5)]
    assert {c.parent_iteration_id for c in children} == {driver.id}
    assert {c.status for c in children} == {IterationStatus.SUCCEEDED}
    for column in ("test-logloss-mean", "test-logloss-std", "train-logloss-mean"):
        assert [m.value for m in tracker.get_metrics(driver.id, key=column)] == pytest.approx(list(frame[column]))
    per_fold = np.array([[m.value for m in tracker.get_metrics(c.id, key="test-logloss")] for c in children])
    assert per_fold.shape == (5, 20)
    # cv's mean and std are over exactly these per-fold values, round by round.
    assert per_fold.mean(axis=0) == pytest.approx(list(frame["test-logloss-mean"]), abs=1e-12)
    assert per_fold.std(axis=0) == pytest.approx(list(frame["test-logloss-std"]), abs=1e-12)


def test_a_reused_callback_gives_each_training_its_own_run(sqlite_url, data):
    cb = DiaryCallback("P", "xgb", uri=sqlite_url, sidecar=False)
    train(cb, data, rounds=3)
    first = cb.iteration_id
    train(cb, data, rounds=4)
    tracker = connect(sqlite_url)
    assert first != cb.iteration_id
    assert [len(tracker.get_metrics(i, key="train-auc")) for i in (first, cb.iteration_id)] == [3, 4]


def test_bad_arguments_are_refused_when_the_callback_is_made(tmp_path):
    with pytest.raises(Unprocessable) as caught:
        DiaryCallback("P", "E", uri=f"sqlite:///{tmp_path / 'x.db'}", register_as="m")
    assert caught.value.field == "register_as"
    with pytest.raises(Unprocessable) as caught:
        DiaryCallback("P", "E", uri=f"sqlite:///{tmp_path / 'x.db'}", params=[1])  # type: ignore[arg-type]
    assert caught.value.field == "params" and not (tmp_path / "x.db").exists()


@pytest.mark.slow
def test_through_a_server_killed_and_restarted_mid_training(tmp_path, data):
    from faults.restartable import Outage, assert_each_step_once, killable_server

    with killable_server(tmp_path) as server:
        cb = DiaryCallback("P", "xgb", uri=server.url, flush_interval=0.1)
        outage = Outage(server, kill=10, restart=30, before_kill=lambda: cb.run.open())

        class Outages(xgb.callback.TrainingCallback):
            def after_iteration(self, model, epoch, evals_log):  # noqa: ANN001, ANN201
                outage.at(epoch)
                return False

        X, y = data
        dtrain = xgb.DMatrix(X, y)
        xgb.train({**PARAMS, "eval_metric": "logloss"}, dtrain, 50, evals=[(dtrain, "train")],
                  callbacks=[cb, Outages()], verbose_eval=False)
        outage.check_done()
        tracker = connect(server.url)
        it = tracker.get_iteration(cb.iteration_id)
        assert it.status is IterationStatus.SUCCEEDED
        assert_each_step_once(tracker, it.id, "train-logloss", range(50))
        assert cb.run.dropped == 0


def raising_objective(nfold=1, fold=0, at=10):  # noqa: ANN001, ANN201
    """Logistic loss by hand that raises in `fold`'s update at round `at` (cv updates fold 0..n-1 in turn)."""
    calls = {"n": 0}

    def objective(predt, dtrain):  # noqa: ANN001, ANN202
        if divmod(calls["n"], nfold) == (at, fold):
            raise ValueError(f"objective blew up in fold {fold} at round {at}")
        calls["n"] += 1
        p = 1.0 / (1.0 + np.exp(-predt))
        return p - dtrain.get_label(), p * (1.0 - p)

    return objective


def test_a_caught_exception_ends_the_run_failed_with_its_text_at_once(sqlite_url, data):
    cb = DiaryCallback("P", "xgb", uri=sqlite_url, sidecar=False)
    with pytest.raises(ValueError, match="blew up"):
        train(cb, data, obj=raising_objective())
    # Already ended, by the time the program handles the exception (not at exit, not generically).
    tracker, it = failed_at_once(cb, sqlite_url, "ValueError: objective blew up in fold 0 at round 10")
    assert [m.step for m in tracker.get_metrics(it.id, key="validation-logloss")] == list(range(10))
    # The booster's wrapper was per training: the next training with the same callback succeeds.
    train(cb, data, rounds=3)
    assert tracker.get_iteration(cb.iteration_id).status is IterationStatus.SUCCEEDED


@pytest.mark.parametrize("order", ["before ours", "after ours"])
def test_another_callback_raising_ends_the_run_failed_with_its_text(sqlite_url, data, order):
    class Boom(xgb.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log):  # noqa: ANN001, ANN202
            if epoch == 4:
                raise RuntimeError("callback gave up at round 4")
            return False

    cb = DiaryCallback("P", "xgb", uri=sqlite_url, sidecar=False)
    X, y = data
    with pytest.raises(RuntimeError):
        xgb.train(PARAMS, xgb.DMatrix(X, y), 20, evals=[(xgb.DMatrix(X, y), "train")],
                  callbacks=[Boom(), cb] if order == "before ours" else [cb, Boom()], verbose_eval=False)
    tracker, it = failed_at_once(cb, sqlite_url, "RuntimeError: callback gave up at round 4")
    # Rounds before it once each; round 4 too when ours ran first in it.
    rounds = 4 if order == "before ours" else 5
    assert [m.step for m in tracker.get_metrics(it.id, key="train-logloss")] == list(range(rounds))


def test_cv_a_fold_that_raises_is_failed_the_others_stopped_the_driver_failed(sqlite_url, data):
    X, y = data
    cb = DiaryCallback("P", "xgb-cv", uri=sqlite_url, sidecar=False)
    with pytest.raises(ValueError):
        xgb.cv({**PARAMS, "eval_metric": "logloss"}, xgb.DMatrix(X, y), 20, nfold=5, seed=1, callbacks=[cb],
               obj=raising_objective(nfold=5, fold=2))
    tracker = connect(sqlite_url)
    driver = tracker.get_iteration(cb.iteration_id)
    children = [tracker.get_iteration(i) for i in cb.fold_iteration_ids]
    assert driver.status is IterationStatus.FAILED
    assert driver.error_message == "fold 2 failed: ValueError: objective blew up in fold 2 at round 10"
    assert "Traceback (most recent call last)" in driver.traceback
    assert [(c.status, c.error_message) for c in children] == [
        (IterationStatus.KILLED, "stopped: fold 2 failed")] * 2 + [
        (IterationStatus.FAILED, "ValueError: objective blew up in fold 2 at round 10")] + [
        (IterationStatus.KILLED, "stopped: fold 2 failed")] * 2
    for child in children:  # rounds 0-9, once each
        assert [m.step for m in tracker.get_metrics(child.id, key="test-logloss")] == list(range(10))
    assert [m.step for m in tracker.get_metrics(driver.id, key="test-logloss-mean")] == list(range(10))
