"""A scikit-learn grid search tracked as an iteration tree: a driver for the search and one child per
candidate, built while the search runs. One configuration is deliberately invalid (the 'liblinear'
solver cannot fit a 3-class problem): its child ends FAILED with the fit's own ValueError, while the
search carries on. Prints the tree (as `diary tree` does) and the best child.

    python examples/sklearn_grid_search.py [TRACKING_URI]     (default: ./deardiary.db, or $DIARY_TRACKING_URI)
"""

from __future__ import annotations

import sys
import warnings

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

from diary_integrations import IterationStatus, connect, format_tree
from diary_integrations.sklearn import DiaryCallback, callbacks_supported, tracked


def main(uri: str | None = None) -> dict[str, object]:
    X, y = load_iris(return_X_y=True)
    grid = [
        {"solver": ["lbfgs"], "C": [0.01, 0.1, 1.0]},
        {"solver": ["liblinear"], "C": [1.0]},  # invalid for 3 classes: this candidate fails
    ]
    search = GridSearchCV(LogisticRegression(max_iter=500), grid, cv=5, n_jobs=2)
    if callbacks_supported(search):  # scikit-learn >= 1.9
        cb = DiaryCallback(project="Iris", experiment="Logistic-regression sweep", uri=uri)
        search.set_callbacks(cb)
    else:  # older scikit-learn: the same tree, built after the fit from cv_results_
        search = tracked(search, project="Iris", experiment="Logistic-regression sweep", uri=uri)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the FitFailedWarning is recorded in the tree instead
        search.fit(X, y)
    driver_id = cb.driver_iteration_id if callbacks_supported(search) else search.fit.driver_iteration_id

    tracker = connect(uri)
    driver = tracker.get_iteration(driver_id)
    print(format_tree(tracker, driver.experiment_id, metrics=["mean_test_score", "rank_test_score"]))
    print()

    kids = tracker.get_child_iterations(driver_id)
    failed = [k for k in kids if k.status is IterationStatus.FAILED]
    scores = tracker.get_latest_metrics([k.id for k in kids])
    best = min((k for k in kids if k.status is IterationStatus.SUCCEEDED),
               key=lambda k: scores[k.id]["rank_test_score"])
    best_params = {p.key: p.value for p in tracker.get_parameters(best.id)}
    print(f"best child: #{best.id} {best_params} mean_test_score={scores[best.id]['mean_test_score']:.4f}")
    print(f"sklearn says: {search.best_params_} best_score_={search.best_score_:.4f}")
    for k in failed:
        print(f"failed child: #{k.id} — {k.error_message}")
    return {
        "driver_status": driver.status.name,
        "children": len(kids),
        "failed": [k.error_message for k in failed],
        "best_params": best_params,
        "search_best_params": {k: str(v) for k, v in search.best_params_.items()},
    }


if __name__ == "__main__":
    main(*sys.argv[1:2])
