"""One 500-round boosting fit in a fresh process, as a user runs a training script:
`python -m benchmarks.boosting_run LIBRARY TRACKER DIR ROUNDS` (from the repository root), LIBRARY
xgboost or lightgbm, TRACKER none, diary, mlflow (autolog to SQLite, models not logged) or wandb (its
callback, offline). Prints one JSON line with the time the fit took inside the process (the tracker's
end included)."""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings

import numpy as np


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 20))
    y = (X[:, 0] - X[:, 1] + 0.5 * X[:, 2] * X[:, 3] + rng.normal(size=4000) > 0).astype(int)
    return X, y


def xgboost_fit(tracker: str, directory: str, rounds: int) -> None:
    import xgboost as xgb

    X, y = data()
    dtrain, dvalid = xgb.DMatrix(X[:3000], y[:3000]), xgb.DMatrix(X[3000:], y[3000:])
    callbacks = []
    if tracker == "diary":
        from diary_integrations.xgboost import DiaryCallback

        callbacks.append(DiaryCallback("bench", "xgboost", uri=f"sqlite:///{directory}/diary.db"))
    elif tracker == "wandb":
        import wandb
        from wandb.integration.xgboost import WandbCallback

        wandb.init(project="bench", dir=directory, mode="offline")
        callbacks.append(WandbCallback(log_model=False, log_feature_importance=False))
    elif tracker == "mlflow":
        import mlflow

        mlflow.set_tracking_uri(f"sqlite:///{directory}/mlflow.db")
        mlflow.xgboost.autolog(log_models=False, log_datasets=False, silent=True)
    params = {"max_depth": 4, "eta": 0.05, "objective": "binary:logistic", "eval_metric": ["logloss", "auc"],
              "nthread": 1}
    xgb.train(params, dtrain, rounds, evals=[(dtrain, "train"), (dvalid, "validation")], callbacks=callbacks,
              verbose_eval=False)
    if tracker == "wandb":
        wandb.finish()
    elif tracker == "mlflow":
        mlflow.end_run()


def lightgbm_fit(tracker: str, directory: str, rounds: int) -> None:
    import lightgbm as lgb

    X, y = data()
    train = lgb.Dataset(X[:3000], y[:3000])
    valid = lgb.Dataset(X[3000:], y[3000:], reference=train)
    callbacks = []
    if tracker == "diary":
        from diary_integrations.lightgbm import DiaryCallback

        callbacks.append(DiaryCallback("bench", "lightgbm", uri=f"sqlite:///{directory}/diary.db"))
    elif tracker == "wandb":
        import wandb
        from wandb.integration.lightgbm import wandb_callback

        wandb.init(project="bench", dir=directory, mode="offline")
        callbacks.append(wandb_callback())
    elif tracker == "mlflow":
        import mlflow

        mlflow.set_tracking_uri(f"sqlite:///{directory}/mlflow.db")
        mlflow.lightgbm.autolog(log_models=False, log_datasets=False, silent=True)
    params = {"objective": "binary", "metric": ["binary_logloss", "auc"], "learning_rate": 0.05, "num_leaves": 15,
              "verbose": -1, "num_threads": 1}
    lgb.train(params, train, rounds, valid_sets=[train, valid], valid_names=["train", "valid"], callbacks=callbacks)
    if tracker == "wandb":
        wandb.finish()
    elif tracker == "mlflow":
        mlflow.end_run()


def main(library: str, tracker: str, directory: str, rounds: int) -> None:
    warnings.filterwarnings("ignore")
    for name in ("mlflow", "wandb", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)
    fit = {"xgboost": xgboost_fit, "lightgbm": lightgbm_fit}[library]
    start = time.perf_counter()
    fit(tracker, directory, rounds)
    print(json.dumps({"fit": time.perf_counter() - start}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
