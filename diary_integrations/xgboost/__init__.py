"""XGBoost integration: `DiaryCallback`, an `xgboost.callback.TrainingCallback` that records a training.

    cb = DiaryCallback("Churn", "xgboost", uri="sqlite:///runs.db", log_model=True)
    booster = xgb.train(params, dtrain, 200, evals=[(dvalid, "validation")], callbacks=[cb])
    cb.iteration_id

Every evaluation result by round (`validation-logloss`, as XGBoost prints it; step = round), the booster's
parameters, best iteration and score, the model (UBJ) as a resource and, with `register_as=`, a model
version. With `xgb.cv` the run is a driver holding the mean/std series `cv` returns and a child per fold
with that fold's own series. Needs the `[xgboost]` extra.
"""

from __future__ import annotations

from .callback import DiaryCallback, booster_parameters

__all__ = ["DiaryCallback", "booster_parameters"]
