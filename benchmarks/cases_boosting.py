"""XGBoost and LightGBM: a 500-round fit with a validation set (two metrics on two data sets, so four
points a round) in a fresh process per run, for no tracker, our DiaryCallback (SQLite through the
sidecar), MLflow's autolog (SQLite, models not logged) and W&B's callback (offline). Whole-process wall
time, variants interleaved; ratios against no tracker and against each peer."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from importlib.util import find_spec
from pathlib import Path

from .harness import Case, Comparison

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 5  # interleaved repeats; few, since a fresh process per run is slow on a loaded 2-core machine
QUICK = ("none", "diary")
NAMES = {"none": "no tracker", "diary": "DiaryCallback (SQLite)", "mlflow": "MLflow autolog (SQLite)",
         "wandb": "W&B callback (offline)"}
_cpu_times: dict[str, list[float]] = defaultdict(list)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(library: str, tracker: str, rounds: int) -> float:
    """Seconds for the whole process (interpreter, imports, fit, exit); its CPU seconds are kept for the
    CPU case, which a loaded machine distorts far less than wall time. The sidecar is not waited for
    (it leaves on its own once the training process has gone), so its CPU is not counted there."""
    directory = tempfile.mkdtemp(prefix=f"diary-bench-{library}-")
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "benchmarks.boosting_run", library, tracker, directory, str(rounds)]
    cpu, start = _cpu(), time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=False, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{library} with {tracker} failed: {done.stderr[-2000:]}")
    json.loads(done.stdout.strip().splitlines()[-1])  # the script reached its end
    _cpu_times[f"{library}/{tracker}"].append(_cpu() - cpu)
    return elapsed


def _case(library: str, quick: bool) -> Case:
    rounds = 20 if quick else 500
    trackers = ["none", "diary"]
    if not quick:
        trackers += [t for t, module in (("mlflow", "mlflow"), ("wandb", "wandb")) if find_spec(module)]
    variants = {NAMES[t]: (lambda t=t: _run(library, t, rounds)) for t in trackers}
    ours = NAMES["diary"]
    comparisons = [Comparison(f"{ours} / no tracker", ours, NAMES["none"], 1.03, "lower")]
    comparisons += [Comparison(f"{NAMES[t]} / {ours}", NAMES[t], ours, 1.0, "higher") for t in trackers[2:]]
    return Case(
        name=f"{library}: {rounds}-round fit in a fresh process",
        description=(f"Wall time of `python -m benchmarks.boosting_run {library} TRACKER` (a new interpreter per "
                     f"run: imports, a {rounds}-round fit on 3,000 rows with a validation set, the tracker's end, "
                     "exit), each tracker against the same script with none."),
        unit="s",
        variants=variants,  # type: ignore[arg-type]
        comparisons=comparisons,
        repeats=1 if quick else ROUNDS,
    )


def _cpu_case(library: str, quick: bool) -> Case:
    """Read back from the wall-time case's processes (run first): each run's CPU seconds."""
    wall = _case(library, quick)

    def recorded(tracker: str, run):  # type: ignore[no-untyped-def]
        def sample() -> float:
            key = f"{library}/{tracker}"
            if not _cpu_times[key]:
                run()
            return _cpu_times[key].pop(0)

        return sample

    by_name = {name: tracker for tracker, name in NAMES.items()}
    wall.variants = {name: recorded(by_name[name], run) for name, run in wall.variants.items()}
    wall.name = f"{library}: CPU seconds of the same fresh processes"
    wall.description = ("User + system CPU seconds of each training process above, which other work on the "
                        "machine changes far less than wall time. Not counted: DiaryCallback's sidecar process "
                        "(SQLAlchemy and the writes, on another core) and W&B's service process.")
    return wall


def xgboost_case(quick: bool) -> Case:
    return _case("xgboost", quick)


def lightgbm_case(quick: bool) -> Case:
    return _case("lightgbm", quick)


def xgboost_cpu_case(quick: bool) -> Case:
    return _cpu_case("xgboost", quick)


def lightgbm_cpu_case(quick: bool) -> Case:
    return _cpu_case("lightgbm", quick)


CASES = [xgboost_case, xgboost_cpu_case, lightgbm_case, lightgbm_cpu_case]
