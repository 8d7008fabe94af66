"""scikit-learn case: a 200-candidate GridSearchCV with and without DiaryCallback (and the tracked()
fallback): what tracking adds to the search's wall time."""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

from .harness import Case, Comparison

GRID = {"max_depth": [2, 3, 4, 5, 6, 8, 10, 12, 16, None], "min_samples_leaf": [1, 2, 3, 5, 8],
        "min_samples_split": [2, 4, 8, 16]}  # 10 x 5 x 4 = 200 candidates
QUICK_GRID = {"max_depth": [2, 4, 6, 8, None], "min_samples_leaf": [1, 4]}  # 10 candidates


def _search(grid: dict, n_jobs: int = 1):  # type: ignore[no-untyped-def]
    from sklearn.model_selection import GridSearchCV
    from sklearn.tree import DecisionTreeClassifier

    return GridSearchCV(DecisionTreeClassifier(random_state=0), grid, cv=5, n_jobs=n_jobs)


def _data():  # type: ignore[no-untyped-def]
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(return_X_y=True)


def _timed_fit(search, x, y) -> float:  # type: ignore[no-untyped-def]
    warnings.filterwarnings("ignore")
    start = time.perf_counter()
    search.fit(x, y)
    return time.perf_counter() - start


_DB = Path(tempfile.mkdtemp(prefix="diary-bench-sk-")) / "diary.db"


def _db() -> str:
    """One database for every tracked fit, created before any timing (a one-off, as for a user)."""
    from diary_integrations import LocalTracker

    url = f"sqlite:///{_DB}"
    LocalTracker(url).get_user("default")
    return url


def grid_search(quick: bool) -> Case:
    from diary_integrations.sklearn import DiaryCallback, callbacks_supported, tracked

    x, y = _data()
    grid = QUICK_GRID if quick else GRID

    def untracked() -> float:
        return _timed_fit(_search(grid), x, y)

    def callback() -> float:
        search = _search(grid)
        search.set_callbacks(DiaryCallback(project="bench", experiment="grid", uri=_db()))
        return _timed_fit(search, x, y)

    def fallback() -> float:
        search = tracked(_search(grid), project="bench", experiment="grid", uri=_db(), use_callbacks=False)
        return _timed_fit(search, x, y)

    variants = {"untracked": untracked, "tracked() fallback": fallback}
    comparisons = [Comparison("tracked() / untracked", "tracked() fallback", "untracked", 1.05, "lower")]
    if callbacks_supported(_search(grid)):
        variants["DiaryCallback"] = callback
        comparisons.insert(0, Comparison("DiaryCallback / untracked", "DiaryCallback", "untracked", 1.05, "lower"))
    return Case(
        name="scikit-learn: a 200-candidate GridSearchCV",
        description=(
            f"GridSearchCV of a DecisionTreeClassifier over {'10 (quick mode)' if quick else '200'} candidates x 5 "
            "folds on the breast "
            "cancer data set, n_jobs=1, untracked against DiaryCallback and the tracked() fallback (built from "
            "`cv_results_` after the fit), into one SQLite file created beforehand (a driver and a child per "
            "candidate with its fold scores, per fit)."
        ),
        unit="s",
        variants=variants,
        comparisons=comparisons,
        repeats=3 if quick else 9,  # fits vary by a few percent run to run on a shared VM: more runs, steadier median
    )


CASES = [grid_search]
