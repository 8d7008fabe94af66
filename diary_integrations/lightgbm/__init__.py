"""LightGBM integration: `DiaryCallback`, a callback for `lgb.train`, `lgb.cv` and the scikit-learn
estimators (`LGBMClassifier().fit(..., callbacks=[cb])`).

    cb = DiaryCallback("Churn", "lightgbm", uri="sqlite:///runs.db", log_model=True)
    booster = lgb.train(params, train_set, 200, valid_sets=[valid], callbacks=[cb])
    cb.iteration_id

Every evaluation result by round (`valid_0-binary_logloss`: LightGBM's data set and metric names; step =
round), the parameters, best iteration and score, the model (LightGBM's text format) as a resource and,
with `register_as=`, a model version. With `lgb.cv` the run is a driver holding the `-mean`/`-stdv`
series `cv` returns and a child per fold with that fold's own series. Needs the `[lightgbm]` extra.
"""

from __future__ import annotations

from .callback import DiaryCallback

__all__ = ["DiaryCallback"]
