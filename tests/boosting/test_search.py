"""XGBClassifier / LGBMClassifier under a GridSearchCV tracked by the scikit-learn DiaryCallback: one tree.
The search is the driver, each candidate a child, and each fold's booster a grandchild under its
candidate with every round; the refit of the best parameters nests under the driver."""

from __future__ import annotations

import pytest
from sklearn.model_selection import GridSearchCV

from diary_integrations import IterationStatus, connect
from diary_integrations.sklearn import DiaryCallback as SearchCallback

pytestmark = pytest.mark.skipif(not hasattr(GridSearchCV, "set_callbacks"),
                                reason="scikit-learn < 1.9 has no callback API")


def tree(uri: str, experiment: str) -> dict[int | None, list]:
    tracker = connect(uri)
    project = tracker.get_project_by_name("P")
    found = tracker.get_experiment_by_name(project.id, experiment)
    children: dict[int | None, list] = {}
    for it in tracker.get_iterations(found.id):
        children.setdefault(it.parent_iteration_id, []).append(it)
    return children


def test_xgboost_rounds_land_in_the_candidates_children(sqlite_url, data):
    xgb = pytest.importorskip("xgboost")
    from diary_integrations.xgboost import DiaryCallback

    X, y = data
    estimator = xgb.XGBClassifier(n_estimators=8, n_jobs=1, eval_metric="logloss",
                                  callbacks=[DiaryCallback("P", "search", uri=sqlite_url, sidecar=False)])
    search = GridSearchCV(estimator, {"max_depth": [1, 2, 3], "learning_rate": [0.1, 0.3]}, cv=3)
    search.set_callbacks(SearchCallback("P", "search", uri=sqlite_url))
    search.fit(X, y, eval_set=[(X, y)], verbose=False)
    children = tree(sqlite_url, "search")
    [driver] = children[None]  # one tree: no booster run at the top level
    candidates = [c for c in children[driver.id] if c.id in children]
    refits = [c for c in children[driver.id] if c.id not in children]
    assert len(candidates) == 6 and len(refits) == 1
    tracker = connect(sqlite_url)
    for candidate in candidates:
        folds = children[candidate.id]
        assert len(folds) == 3 and {f.status for f in folds} == {IterationStatus.SUCCEEDED}
        for fold in folds:
            assert [m.step for m in tracker.get_metrics(fold.id, key="validation_0-logloss")] == list(range(8))
        depth = {p.key: p.value for p in tracker.get_parameters(folds[0].id)}["max_depth"]
        assert {p.key: p.value for p in tracker.get_parameters(candidate.id)}["max_depth"] == depth
    best = {p.key: p.value for p in tracker.get_parameters(refits[0].id)}
    assert best["max_depth"] == str(search.best_params_["max_depth"])


def test_lightgbm_rounds_land_in_the_candidates_children(sqlite_url, data):
    lgb = pytest.importorskip("lightgbm")
    from diary_integrations.lightgbm import DiaryCallback

    X, y = data
    estimator = lgb.LGBMClassifier(n_estimators=6, num_leaves=4, n_jobs=1, verbose=-1)
    search = GridSearchCV(estimator, {"learning_rate": [0.1, 0.3]}, cv=2, refit=False)
    search.set_callbacks(SearchCallback("P", "lgb-search", uri=sqlite_url))
    search.fit(X, y, eval_X=X, eval_y=y,
               callbacks=[DiaryCallback("P", "lgb-search", uri=sqlite_url, sidecar=False)])
    children = tree(sqlite_url, "lgb-search")
    [driver] = children[None]
    candidates = children[driver.id]
    assert len(candidates) == 2
    tracker = connect(sqlite_url)
    for candidate in candidates:
        folds = children[candidate.id]
        assert len(folds) == 2
        for fold in folds:
            assert tracker.get_iteration(fold.id).status is IterationStatus.SUCCEEDED
            assert [m.step for m in tracker.get_metrics(fold.id, key="valid_0-binary_logloss")] == list(range(6))


def test_xgboost_rounds_land_in_the_candidates_children_from_loky_workers(sqlite_url, data):
    """n_jobs=2: the folds (and their boosters) run in loky worker processes, which ask the main process
    for their candidate's child over the search's event socket."""
    xgb = pytest.importorskip("xgboost")
    from diary_integrations.xgboost import DiaryCallback

    X, y = data
    estimator = xgb.XGBClassifier(n_estimators=5, n_jobs=1, eval_metric="logloss",
                                  callbacks=[DiaryCallback("P", "loky", uri=sqlite_url, sidecar=False,
                                                           system_metrics=False)])
    search = GridSearchCV(estimator, {"max_depth": [1, 2], "learning_rate": [0.1, 0.3]}, cv=2, n_jobs=2,
                          refit=False)
    search.set_callbacks(SearchCallback("P", "loky", uri=sqlite_url))
    search.fit(X, y, eval_set=[(X, y)], verbose=False)
    children = tree(sqlite_url, "loky")
    [driver] = children[None]  # one tree: no booster run at the top level
    candidates = children[driver.id]
    assert len(candidates) == 4
    tracker = connect(sqlite_url)
    for candidate in candidates:
        folds = children[candidate.id]
        assert len(folds) == 2 and {f.status for f in folds} == {IterationStatus.SUCCEEDED}
        for fold in folds:
            assert [m.step for m in tracker.get_metrics(fold.id, key="validation_0-logloss")] == list(range(5))
        depth = {p.key: p.value for p in tracker.get_parameters(folds[0].id)}["max_depth"]
        assert {p.key: p.value for p in tracker.get_parameters(candidate.id)}["max_depth"] == depth
