"""Transformers in a fresh process per run, as users run training scripts: a tiny BERT's `Trainer.train`
with DiaryCallback against `report_to="none"` and against Transformers' own MLflowCallback (SQLite) and
WandbCallback (offline). Two figures from the same processes: the whole run's wall time (interpreter
start, imports, training, exit) and `train()` alone. Variants run interleaved; medians."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from importlib.util import find_spec
from pathlib import Path

from .harness import Case, Comparison, read_back

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 9  # a fresh process varies by ±5% run to run on a 2-core machine: 9 rounds give a steady median
OURS = "DiaryCallback (existing database)"
_train_times: dict[str, list[float]] = defaultdict(list)
_EXISTING = Path(tempfile.mkdtemp(prefix="diary-bench-transformers-db-"))


def _run(name: str, kind: str, steps: int, *, directory: str | None = None) -> float:
    """Seconds for the whole process; its train() time is kept for the second case."""
    directory = directory or tempfile.mkdtemp(prefix="diary-bench-transformers-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DIARY_TRACKING_URI"))}
    args = [sys.executable, "-m", "benchmarks.transformers_run", kind, directory, str(steps)]
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=False, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed: {done.stderr[-2000:]}")
    _train_times[name].append(json.loads(done.stdout.strip().splitlines()[-1])["train"])
    return elapsed


def _variants(steps: int, quick: bool) -> dict[str, object]:
    variants: dict[str, object] = {
        'report_to="none"': lambda: _run('report_to="none"', "none", steps),
        OURS: lambda: _run(OURS, "diary", steps, directory=str(_EXISTING)),
    }
    if quick:  # the smoke run (a test in the suite) only checks that the case works
        return variants
    if find_spec("mlflow"):
        variants["MLflowCallback (SQLite)"] = lambda: _run("MLflowCallback (SQLite)", "mlflow", steps)
    if find_spec("wandb"):
        variants["WandbCallback (offline)"] = lambda: _run("WandbCallback (offline)", "wandb", steps)
    return variants


def _comparisons(variants: dict[str, object], target: float | None) -> list[Comparison]:
    out = [Comparison(f'{OURS} / report_to="none"', OURS, 'report_to="none"', target, "lower")]
    for peer in variants:
        if peer not in (OURS, 'report_to="none"'):
            out.append(Comparison(f"{peer} / {OURS}", peer, OURS, 1.0, "higher"))
    return out


def whole_run(quick: bool) -> Case:
    steps = 20 if quick else 300
    variants = _variants(steps, quick)
    return Case(
        name="Transformers in a fresh process: whole run",
        description=(
            f"Wall time of `python -m benchmarks.transformers_run` (a new interpreter per run: imports, a "
            f"{steps}-step `Trainer.train` of a tiny BERT classifier logging every 10 steps and evaluating every "
            "100, exit) with each reporter, against the same script with `report_to=\"none\"`. Peers above 1.0 "
            "are slower than DiaryCallback."
        ),
        unit="s",
        variants=variants,  # type: ignore[arg-type]
        comparisons=_comparisons(variants, 1.03),
        repeats=1 if quick else ROUNDS,
    )


def train_call(quick: bool) -> Case:
    """Read back from the whole-run case's processes: each run reported its own `train()` time."""
    steps = 20 if quick else 300
    variants = _variants(steps, quick)
    return Case(
        name="Transformers in a fresh process: train() alone",
        description="Seconds `Trainer.train` took inside the same runs (opening the run, every log, its end).",
        unit="s",
        variants=read_back(variants, _train_times),  # type: ignore[arg-type]
        comparisons=_comparisons(variants, None),
        repeats=1 if quick else ROUNDS,
    )


CASES = [whole_run, train_call]
