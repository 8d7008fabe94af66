"""A boosting training in a process of its own, for the tests that need a real process end: argv is
LIBRARY (xgboost|lightgbm|keras) URI HOW (raise: the custom objective raises at round 10; catch: the same,
and the program catches the exception and exits cleanly; sleep: slow rounds, for a SIGTERM). Prints
ITERATION <id> once the run is open and ROUND <n> after each round."""

from __future__ import annotations

import sys
import time

import numpy as np

library, uri, how = sys.argv[1:4]
rng = np.random.default_rng(0)
X = rng.normal(size=(300, 8))
y = (X[:, 0] + 0.5 * rng.normal(size=300) > 0).astype(float)
rounds = {"n": 0}
raises = how in ("raise", "catch")


def objective_grad_hess(predt: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Logistic loss, by hand; raises at round 10 when asked to."""
    if raises and rounds["n"] == 10:
        raise ValueError("custom objective blew up at round 10")
    if how == "sleep":
        time.sleep(0.05)
    p = 1.0 / (1.0 + np.exp(-predt))
    rounds["n"] += 1
    return p - labels, p * (1.0 - p)


if library == "xgboost":
    import xgboost as xgb

    from diary_integrations.xgboost import DiaryCallback

    class Progress(xgb.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log):  # noqa: ANN001, ANN201
            if epoch == 0:
                print("ITERATION", cb.iteration_id, flush=True)
            print("ROUND", epoch, flush=True)
            return False

    cb = DiaryCallback("P", "boosting", uri=uri, flush_interval=0.2, sidecar=False)
    dtrain = xgb.DMatrix(X, y)

    def fit() -> None:
        xgb.train({"max_depth": 2, "eval_metric": "logloss", "nthread": 1}, dtrain, 1000, evals=[(dtrain, "train")],
                  obj=lambda predt, d: objective_grad_hess(predt, d.get_label()), callbacks=[cb, Progress()],
                  verbose_eval=False)
elif library == "keras":
    import keras

    from diary_integrations.keras import DiaryCallback

    class RaiseAtEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):  # noqa: ANN001, ANN201
            if epoch == 0:
                print("ITERATION", cb.iteration_id, flush=True)
            if raises and epoch == 10:
                raise ValueError("custom objective blew up at round 10")
            if how == "sleep":
                time.sleep(0.05)

        def on_epoch_end(self, epoch, logs=None):  # noqa: ANN001, ANN201
            print("ROUND", epoch, flush=True)

    cb = DiaryCallback("P", "boosting", uri=uri, flush_interval=0.2, sidecar=False, log_every_n_batches=0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy")

    def fit() -> None:
        model.fit(X, y, epochs=1000, batch_size=300, verbose=0, callbacks=[cb, RaiseAtEpoch()])
else:
    import lightgbm as lgb

    from diary_integrations.lightgbm import DiaryCallback

    def progress(env):  # noqa: ANN001, ANN201
        if env.iteration == 0:
            print("ITERATION", cb.iteration_id, flush=True)
        print("ROUND", env.iteration, flush=True)

    progress.order = 40  # type: ignore[attr-defined]
    cb = DiaryCallback("P", "boosting", uri=uri, flush_interval=0.2, sidecar=False)
    data = lgb.Dataset(X, y)

    def fit() -> None:
        lgb.train({"objective": lambda predt, d: objective_grad_hess(predt, d.get_label()), "verbose": -1,
                   "metric": "binary_logloss", "num_threads": 1}, data, 1000, valid_sets=[data],
                  callbacks=[cb, progress])

if how == "catch":  # the program handles the failure and goes on to a clean exit
    try:
        fit()
    except ValueError as error:
        print("CAUGHT", error, flush=True)
else:
    fit()
