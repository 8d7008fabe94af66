"""The benchmark suite's smoke run: `python -m benchmarks --quick` runs every case and writes a report.
It checks that the benchmarks work, never how fast anything is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_benchmarks_run_and_report(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = out.read_text()
    for case in ("Ingest: metric points", "single create_metric", "Sweep:", "Read:", "Lightning: tiny model",
                 "log_metrics call", "Server: 8 client", "scikit-learn:", "Memory:",
                 "Lightning in a fresh process: whole run", "Lightning in a fresh process: time to first step"):
        assert case in report, f"the report lacks the case {case!r}"
    assert "MLflow (SQLite)" in report and "| diary (SQLite) |" in report
    assert "none lost or duplicated" in report
