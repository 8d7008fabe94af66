"""Lightning in a fresh process per run, as users run training scripts: the whole run's wall time
(interpreter start, imports, fit, exit) and the time from `Trainer.fit` to the first training step, for
no logger, Lightning's own loggers, W&B offline and DiaryLogger (new database, existing database, and
through a local tracking server). Variants run interleaved."""

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
_first_steps: dict[str, list[float]] = defaultdict(list)
_EXISTING = Path(tempfile.mkdtemp(prefix="diary-bench-fresh-db-"))
_EXISTING_OFF = Path(tempfile.mkdtemp(prefix="diary-bench-fresh-db-"))
SYSTEM_OFF = "DiaryLogger (existing database, system metrics off)"


def _run(name: str, kind: str, steps: int, *, directory: str | None = None, url: str | None = None) -> float:
    """Seconds for the whole process; its time to first step is kept for the second case."""
    directory = directory or tempfile.mkdtemp(prefix="diary-bench-fresh-")
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    args = [sys.executable, "-m", "benchmarks.fresh_run", kind, directory, str(steps)] + ([url] if url else [])
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=False, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed: {done.stderr[-2000:]}")
    _first_steps[name].append(json.loads(done.stdout.strip().splitlines()[-1])["first_step"])
    return elapsed


QUICK = ("no logger", "DiaryLogger (existing database)")
# A fresh process's wall time varies by ±5% run to run on a 2-core machine (imports, the page cache),
# as much as the 1.05x target it judges: 9 interleaved rounds give a median that holds still.
ROUNDS = 9


def _variants(steps: int, quick: bool) -> dict[str, object]:
    variants = _all_variants(steps)
    # The smoke run (a test in the suite) only checks that the case works: two variants, one run each.
    return {name: variants[name] for name in QUICK} if quick else variants


def _all_variants(steps: int) -> dict[str, object]:
    variants: dict[str, object] = {
        "no logger": lambda: _run("no logger", "none", steps),
        "CSVLogger": lambda: _run("CSVLogger", "csv", steps),
        "MLFlowLogger (SQLite)": lambda: _run("MLFlowLogger (SQLite)", "mlflow", steps),
        "DiaryLogger (new database)": lambda: _run("DiaryLogger (new database)", "diary", steps),
        "DiaryLogger (existing database)": lambda: _run(
            "DiaryLogger (existing database)", "diary", steps, directory=str(_EXISTING)),
        # System metrics are on by default (above); the same run with them off measures what they cost.
        SYSTEM_OFF: lambda: _run(SYSTEM_OFF, "diary-nosys", steps, directory=str(_EXISTING_OFF)),
    }
    if find_spec("tensorboard") or find_spec("tensorboardX"):
        variants["TensorBoardLogger"] = lambda: _run("TensorBoardLogger", "tensorboard", steps)
    if find_spec("wandb"):
        variants["WandbLogger (offline)"] = lambda: _run("WandbLogger (offline)", "wandb", steps)
    try:
        from .server_process import diary_server

        variants["DiaryLogger (local server)"] = lambda: _run(
            "DiaryLogger (local server)", "diary", steps, url=diary_server())
    except ImportError:
        pass
    return variants


def _peers(variants: dict[str, object], ours: str) -> list[Comparison]:
    out = [Comparison(f"{ours} / no logger", ours, "no logger", None, "lower")]
    for peer in variants:
        if peer != "no logger" and not peer.startswith("DiaryLogger"):
            out.append(Comparison(f"{peer} / {ours}", peer, ours, None, "higher"))
    return out


def fresh_process_wall_time(quick: bool) -> Case:
    steps = 50 if quick else 2000
    variants = _variants(steps, quick)
    comparisons = _peers(variants, "DiaryLogger (existing database)")
    comparisons[0].target = 1.05
    if SYSTEM_OFF in variants:
        comparisons.append(Comparison("system metrics on / off (DiaryLogger, existing database)",
                                      "DiaryLogger (existing database)", SYSTEM_OFF, 1.01, "lower"))
    for other in ("DiaryLogger (new database)", "DiaryLogger (local server)"):
        if other in variants:
            comparisons.append(Comparison(f"{other} / no logger", other, "no logger", None, "lower"))
    return Case(
        name="Lightning in a fresh process: whole run",
        description=(
            f"Wall time of `python -m benchmarks.fresh_run` (a new interpreter per run: imports, a {steps:,}-step "
            "fit of a tiny MLP logging every step, exit), each logger against the same script with no logger."
        ),
        unit="s",
        variants=variants,  # type: ignore[arg-type]
        comparisons=comparisons,
        repeats=1 if quick else ROUNDS,
    )


def fresh_process_first_step(quick: bool) -> Case:
    """Read back from the whole-run case's processes: each run reported its own time to first step."""
    steps = 50 if quick else 2000
    variants = _variants(steps, quick)
    names = list(variants)
    comparisons = [
        Comparison(f"{name} / no logger", name, "no logger", None, "lower") for name in names if name != "no logger"
    ]
    return Case(
        name="Lightning in a fresh process: time to first step",
        description=(
            "Seconds from calling `Trainer.fit` to the first `on_train_batch_start`, in the same runs. The "
            "medians give the time each logger adds before training starts (target for DiaryLogger: at most "
            "50 ms on an existing database, 150 ms on a new one)."
        ),
        unit="s",
        variants=read_back(variants, _first_steps),  # type: ignore[arg-type]
        comparisons=comparisons,
        repeats=1 if quick else ROUNDS,
    )


CASES = [fresh_process_wall_time, fresh_process_first_step]
