"""examples/sklearn_grid_search.py, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from diary_integrations import IterationStatus, connect

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # a whole example in a subprocess


def test_sklearn_grid_search_example(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "sklearn_grid_search.py")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Experiment 1 · Logistic-regression sweep" in out
    assert "✗" in out and "FAILED" in out and "ValueError: The 'liblinear' solver" in out
    assert "best child: #" in out and "{'solver': 'lbfgs', 'C': '1.0'}" in out
    assert "sklearn says: {'C': 1.0, 'solver': 'lbfgs'}" in out
    tracker = connect(tmp_path / "deardiary.db")  # the default place
    assert "tracked in deardiary.db (to look: diary ui deardiary.db)" in done.stderr
    iterations = tracker.get_iterations(1)
    assert len(iterations) == 5
    assert sorted(it.status.name for it in iterations) == ["FAILED"] + ["SUCCEEDED"] * 4
    assert not any(it.status is IterationStatus.RUNNING for it in iterations)
