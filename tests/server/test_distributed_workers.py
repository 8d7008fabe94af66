"""The issue's story: examples/distributed_workers.py against a server it starts itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from diary_integrations import IterationStatus, LocalTracker

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # a whole example in a subprocess


def test_distributed_workers_example(tmp_path):
    db = tmp_path / "server.db"
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "distributed_workers.py"), str(db)],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "1 worker(s) crashed" in done.stdout

    # What the server wrote, read straight from its database.
    tracker = LocalTracker(db)
    (driver,) = [it for it in tracker.get_iterations(1) if it.parent_iteration_id is None]
    assert driver.status is IterationStatus.SUCCEEDED
    assert tracker.get_environment(driver.id) is not None  # captured in the client process and sent along
    children = tracker.get_child_iterations(driver.id)
    assert len(children) == 8
    by_rank = {int(tracker.get_parameters(c.id)[0].value): c for c in children}
    assert sorted(by_rank) == list(range(1, 9))
    crashed = by_rank.pop(3)
    assert crashed.status is IterationStatus.FAILED
    assert crashed.error_message == "RuntimeError: rank 3 lost its data partition at epoch 2"
    assert "Traceback (most recent call last)" in crashed.traceback and "distributed_workers.py" in crashed.traceback
    assert crashed.end_date is not None
    assert [m.step for m in tracker.get_metrics(crashed.id, key="loss")] == [0, 1, 2]
    for child in by_rank.values():
        assert child.status is IterationStatus.SUCCEEDED and child.error_message == "" and child.end_date
        assert [m.step for m in tracker.get_metrics(child.id, key="loss")] == [0, 1, 2, 3, 4]
    tracker.close()
