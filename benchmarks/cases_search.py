"""Issue 23, reads that scale: the best child, the first page of children and a search (one parameter
filter, ordered by a metric) under a driver with 10,000 and 100,000 children, against MLflow's
`search_runs` on the same rows in its SQLite store; `sweep_frame` of 10,000 children against MLflow's
`search_runs` as a DataFrame. On SQLite, and on PostgreSQL when $DIARY_BENCH_POSTGRES (a SQLAlchemy URL
whose database the benchmark may create schemas in) is set."""

from __future__ import annotations

import atexit
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from diary_integrations import sweep_frame

from .harness import Case, Comparison, Limit
from .pg_schema import fresh_schema
from .search_data import DiarySweep, MlflowSweep, build_diary, build_mlflow

POSTGRES = os.environ.get("DIARY_BENCH_POSTGRES")
# MLflow's search_runs on 100,000 runs takes many minutes per call (its best child took ~100 s per call at
# 10,000 on a loaded 2-core machine), so it joins the 100k case only when asked.
MLFLOW_100K = bool(os.environ.get("DIARY_BENCH_MLFLOW_100K"))
FILTER = "params.optimizer = 'adam'"
ORDER = "metrics.val_loss"
PAGE = 100


def _tmp() -> Path:
    return Path(tempfile.mkdtemp(prefix="diary-bench-search-"))


def _postgres_schema() -> str:
    """A fresh schema in $DIARY_BENCH_POSTGRES, dropped when the benchmark exits."""
    assert POSTGRES is not None
    url, drop = fresh_schema(POSTGRES, "bench_search")
    atexit.register(drop)
    return url


def _timed(fn: Callable[[], Any], check: Callable[[Any], bool]) -> float:
    start = time.perf_counter()
    answer = fn()
    elapsed = time.perf_counter() - start
    assert check(answer), answer
    return elapsed


def _diary_variants(label: str, get: Callable[[], DiarySweep]) -> dict[str, Callable[[], float]]:
    def best() -> float:
        sweep = get()
        return _timed(lambda: sweep.tracker.get_best_child_iteration(sweep.driver_id, "val_loss", mode="min"),
                      lambda found: found is not None)

    def page() -> float:
        sweep = get()
        return _timed(lambda: sweep.tracker.get_child_iterations(sweep.driver_id, limit=PAGE),
                      lambda kids: len(kids) == PAGE)

    def search() -> float:
        sweep = get()
        return _timed(
            lambda: sweep.tracker.search_iterations(sweep.experiment_id, FILTER, [ORDER], max_results=PAGE),
            lambda found: len(found) == PAGE,
        )

    return {f"diary best child ({label})": best, f"diary first page ({label})": page,
            f"diary search ({label})": search}


def _mlflow_variants(get: Callable[[], MlflowSweep]) -> dict[str, Callable[[], float]]:
    def parent_filter(sweep: MlflowSweep) -> str:
        return f"tags.mlflow.parentRunId = '{sweep.parent_run_id}'"

    def best() -> float:
        sweep = get()
        return _timed(lambda: sweep.client.search_runs([sweep.experiment_id], parent_filter(sweep),
                                                       order_by=["metrics.val_loss ASC"], max_results=1),
                      lambda runs: len(runs) == 1)

    def page() -> float:
        sweep = get()
        return _timed(lambda: sweep.client.search_runs([sweep.experiment_id], parent_filter(sweep), max_results=PAGE),
                      lambda runs: len(runs) == PAGE)

    def search() -> float:
        sweep = get()
        return _timed(lambda: sweep.client.search_runs([sweep.experiment_id], FILTER, order_by=[f"{ORDER} ASC"],
                                                       max_results=PAGE),
                      lambda runs: len(runs) == PAGE)

    return {"MLflow best child (SQLite)": best, "MLflow first page (SQLite)": page, "MLflow search (SQLite)": search}


def _reads(children: int, quick: bool) -> Case:
    state: dict[str, Any] = {}

    def cached(name: str, make: Callable[[], Any]) -> Callable[[], Any]:
        def get() -> Any:
            if name not in state:
                state[name] = make()
            return state[name]
        return get

    variants = _diary_variants("SQLite", cached("sqlite", lambda: build_diary(str(_tmp() / "diary.db"), children)))
    if POSTGRES and not quick:
        variants |= _diary_variants("PostgreSQL", cached("pg", lambda: build_diary(_postgres_schema(), children)))
    with_mlflow = children < 100_000 or MLFLOW_100K or quick
    comparisons = []
    if with_mlflow:
        variants |= _mlflow_variants(cached("mlflow", lambda: build_mlflow(_tmp(), children)))
        comparisons = [
            Comparison(f"MLflow / diary: {what}", f"MLflow {what} (SQLite)", f"diary {what} (SQLite)", None, "higher")
            for what in ("best child", "first page", "search")
        ]
    limits = []
    if children >= 100_000:
        for label in ("SQLite", "PostgreSQL") if POSTGRES else ("SQLite",):
            limits += [
                Limit(f"best child at 100k ({label})", f"diary best child ({label})", 0.050, "lower"),
                Limit(f"first page of children at 100k ({label})", f"diary first page ({label})", 0.050, "lower"),
                Limit(f"param filter + metric order at 100k ({label})", f"diary search ({label})", 0.200, "lower"),
            ]
    return Case(
        name=f"Search: {children:,} children, best child, first page, a filtered search",
        description=(
            f"One driver with {children:,} children (5 parameters, 3 metrics of 2 steps each, 1 in 50 FAILED). "
            "`get_best_child_iteration(val_loss, min)` (among SUCCEEDED children), `get_child_iterations(limit="
            f"{PAGE})`, and `search_iterations(\"{FILTER}\", [\"{ORDER}\"], max_results={PAGE})`, against MLflow "
            "`search_runs` on the same rows in its SQLite store (parent tag filter + order_by, max_results 1 or "
            f"{PAGE}; the same filter and order). Data is built once per case, then each read is timed alone."
        ),
        unit="s",
        variants=variants,
        comparisons=comparisons,
        limits=limits,
        repeats=3,
        notes=["Figures measured on a machine shared with other work: ratios within one interleaved run are the "
               "reliable part; absolute times vary with the load."]
        + ([] if with_mlflow else ["MLflow left out at 100,000 runs (minutes per call); set "
                                   "DIARY_BENCH_MLFLOW_100K=1 to include it."]),
    )


def reads_10k(quick: bool) -> Case:
    return _reads(500 if quick else 10_000, quick)


def reads_100k(quick: bool) -> Case:
    return _reads(1_000 if quick else 100_000, quick)


def frames_10k(quick: bool) -> Case:
    children = 500 if quick else 10_000
    state: dict[str, Any] = {}

    def diary() -> float:
        if "diary" not in state:
            state["diary"] = build_diary(str(_tmp() / "diary.db"), children)
        sweep: DiarySweep = state["diary"]
        return _timed(lambda: sweep_frame(sweep.driver_id, tracker=sweep.tracker), lambda f: len(f) == children)

    def diary_postgres() -> float:
        if "pg" not in state:
            state["pg"] = build_diary(_postgres_schema(), children)
        sweep: DiarySweep = state["pg"]
        return _timed(lambda: sweep_frame(sweep.driver_id, tracker=sweep.tracker), lambda f: len(f) == children)

    def mlflow() -> float:
        import mlflow as mlflow_module

        if "mlflow" not in state:
            directory = _tmp()
            state["mlflow"] = (build_mlflow(directory, children), f"sqlite:///{directory / 'mlflow.db'}")
        sweep, uri = state["mlflow"]
        mlflow_module.set_tracking_uri(uri)
        children_of = f"tags.mlflow.parentRunId = '{sweep.parent_run_id}'"
        return _timed(lambda: mlflow_module.search_runs([sweep.experiment_id], children_of, max_results=50_000),
                      lambda f: len(f) == children)

    return Case(
        name=f"Frames: sweep_frame of {children:,} children",
        description=(
            f"`sweep_frame(driver)` of {children:,} children (5 parameters, 3 metrics) as a pandas DataFrame, "
            "against `mlflow.search_runs` (a DataFrame too) of the same runs in MLflow's SQLite store."
        ),
        unit="s",
        variants={"diary sweep_frame (SQLite)": diary, "MLflow search_runs frame (SQLite)": mlflow}
        | ({"diary sweep_frame (PostgreSQL)": diary_postgres} if POSTGRES and not quick else {}),
        comparisons=[Comparison("MLflow / diary", "MLflow search_runs frame (SQLite)", "diary sweep_frame (SQLite)",
                                None, "higher")],
        limits=[] if quick else [Limit(f"sweep_frame of 10k children ({label})", f"diary sweep_frame ({label})", 1.0,
                                       "lower") for label in ("SQLite", "PostgreSQL") if label == "SQLite" or POSTGRES],
        repeats=5,
    )


CASES = [reads_10k, reads_100k, frames_10k]
