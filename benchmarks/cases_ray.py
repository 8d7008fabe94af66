"""Ray Tune case: 50 trials of a trivial trainable, each experiment in a fresh process (a local Ray with
2 CPUs), with no callback, DiaryCallback (SQLite) and Ray's own MLflowLoggerCallback (SQLite). The
number is the time `Tuner.fit` took inside that process: Ray's start and stop, which take longer than
the experiment on a loaded 2-core machine, are left out. Variants run interleaved."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from importlib.util import find_spec
from pathlib import Path

from .harness import Case, Comparison

ROOT = Path(__file__).resolve().parents[1]


def _run(kind: str, trials: int) -> float:
    directory = tempfile.mkdtemp(prefix=f"diary-bench-ray-{kind}-")
    args = [sys.executable, "-m", "benchmarks.ray_run", kind, directory, str(trials)]
    done = subprocess.run(args, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} failed: {done.stderr[-2000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["fit"])


def tune_trials(quick: bool) -> Case:
    trials = 2 if quick else 50
    # The smoke run (a test in the suite) only checks that the case works: one fresh Ray (tens of seconds
    # on a loaded machine), with our callback.
    variants = {"DiaryCallback (SQLite)": lambda: _run("diary", trials)}
    comparisons: list[Comparison] = []
    if not quick:
        variants["no callback"] = lambda: _run("none", trials)
        comparisons.append(
            Comparison("DiaryCallback / no callback", "DiaryCallback (SQLite)", "no callback", 1.05, "lower"))
    if find_spec("mlflow") and not quick:
        variants["MLflowLoggerCallback (SQLite)"] = lambda: _run("mlflow", trials)
        comparisons.append(Comparison("MLflowLoggerCallback / DiaryCallback", "MLflowLoggerCallback (SQLite)",
                                      "DiaryCallback (SQLite)", None, "higher"))
        comparisons.append(Comparison("MLflowLoggerCallback / no callback", "MLflowLoggerCallback (SQLite)",
                                      "no callback", None, "lower"))
    return Case(
        name="Ray Tune: 50 trials of a trivial trainable",
        description=(
            f"`Tuner.fit` of {trials} trials (3 reports each, reuse_actors=True) on a local Ray with 2 CPUs, one "
            "fresh process per experiment, seconds inside `fit`: no callback against DiaryCallback (a driver, "
            "a child per trial, every result) and Ray's MLflowLoggerCallback (a flat run per trial)."
        ),
        unit="s",
        variants=variants,  # type: ignore[arg-type]
        comparisons=comparisons,
        repeats=1 if quick else 3,  # each round starts Ray three times: minutes on a 2-core machine
    )


CASES = [tune_trials]
