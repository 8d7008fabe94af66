"""The benchmark suite's smoke run: `python -m benchmarks --quick` runs every case and writes a report.
It checks that the benchmarks work, never how fast anything is. One test per case module, so a
parallel test run spreads them over its workers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# The benchmarks measure what users run: system metrics as by default.
pytestmark = pytest.mark.system_metrics

ROOT = Path(__file__).resolve().parents[2]

CASES = {
    "cases_core": ("Ingest: metric points", "single create_metric", "Sweep:", "Read:", "MLflow (SQLite)",
                   "| diary (SQLite) |"),
    "cases_lightning": ("Lightning: tiny model", "log_metrics call"),
    "cases_server": ("Server: 8 client", "none lost or duplicated"),
    "cases_sklearn": ("scikit-learn:",),
    "cases_memory": ("Memory:",),
    "cases_fresh": ("Lightning in a fresh process: whole run", "Lightning in a fresh process: time to first step"),
    "cases_boosting": ("xgboost: 20-round fit", "lightgbm: 20-round fit"),
    "cases_search": ("Search: 500 children", "Search: 1,000 children", "MLflow / diary: best child",
                     "Frames: sweep_frame of 500 children"),
    "cases_transformers": ("Transformers in a fresh process: whole run", "Transformers in a fresh process: train()"),
    "cases_system": ("System metrics: calls on the training thread", "System metrics: the sampler's own CPU",
                     "in-process thread vs another process", "System metrics: a whole run, on vs off"),
    "cases_ray": ("Ray Tune: 50 trials", "DiaryCallback (SQLite)"),
}


def test_every_case_module_is_smoke_run():
    # In a subprocess: this test directory is itself imported as a package named `benchmarks`.
    done = subprocess.run(
        [sys.executable, "-c", "from benchmarks.__main__ import CASE_MODULES; print(' '.join(CASE_MODULES))"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    assert sorted(CASES) == sorted(done.stdout.split())


@pytest.mark.slow
@pytest.mark.parametrize("module", sorted(CASES))
def test_quick_benchmarks_run_and_report(tmp_path, module):
    out = tmp_path / "BENCHMARKS.md"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--module", module, "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = out.read_text()
    for case in CASES[module]:
        assert case in report, f"the report of {module} lacks {case!r}"
