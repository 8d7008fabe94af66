"""DiaryCallback under torchrun: two CPU processes (gloo) train one model. Without `per_rank` only the
main process writes, so there is one run (which a failing rank 1 ends with its own error); with it, a
driver and a child per rank."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from diary_integrations import IterationStatus, connect

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent


def torchrun(uri: str, mode: str, cwd: Path, *, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DIARY_DRIVER_ITERATION_ID", "LOCAL_RANK", "RANK"}}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(HERE / "tiny_bert.py"), uri, mode, str(cwd / "out")],
        capture_output=True, text=True, timeout=400, cwd=cwd, env=env,
    )
    assert (done.returncode == 0) is ok, done.stderr[-4000:]
    return done


def steps(tracker, iteration_id: int, key: str) -> list[int]:
    return sorted(p.step for p in tracker.get_metrics(iteration_id) if p.key == key)


def test_two_processes_write_one_run_and_with_per_rank_a_driver_and_a_child_per_rank(sqlite_uri, tmp_path):
    torchrun(sqlite_uri, "ddp", tmp_path)  # trains twice: the default callback, then per_rank=True
    tracker = connect(sqlite_uri)
    plain = tracker.get_project_by_name("Transformers")
    single = tracker.get_experiment_by_name(plain.id, "tiny")
    (run,) = tracker.get_iterations(single.id)  # rank 1 wrote nothing: not a second run, not a child
    assert run.status is IterationStatus.SUCCEEDED and run.parent_iteration_id is None
    assert steps(tracker, run.id, "train/loss") == [5, 10, 15, 20, 25, 30]
    assert steps(tracker, run.id, "eval/loss") == [10, 20, 30]
    assert {p.key: p.value for p in tracker.get_parameters(run.id)}["args/ddp_backend"] == "gloo"

    everything = tracker.get_iterations(tracker.get_experiment_by_name(plain.id, "tiny per rank").id)
    (driver,) = [it for it in everything if it.parent_iteration_id is None]
    assert driver.status is IterationStatus.SUCCEEDED
    children = tracker.get_child_iterations(driver.id)
    assert len(everything) == 3 and sorted(c.name for c in children) == ["rank 0", "rank 1"]
    for child in children:
        params = {p.key: p.value for p in tracker.get_parameters(child.id)}
        assert child.status is IterationStatus.SUCCEEDED and params["world_size"] == "2"
        assert child.name == f"rank {params['rank']}" and params["args/ddp_backend"] == "gloo"
        assert steps(tracker, child.id, "train/loss") == [5, 10, 15, 20, 25, 30]


def test_a_failing_rank_1_ends_the_run_rank_0_writes_with_its_own_error(sqlite_uri, tmp_path):
    done = torchrun(sqlite_uri, "ddp-fail", tmp_path, ok=False)
    assert "ValueError: the metric broke on rank 1" in done.stderr
    tracker = connect(sqlite_uri)
    project = tracker.get_project_by_name("Transformers")
    (run,) = tracker.get_iterations(tracker.get_experiment_by_name(project.id, "tiny").id)
    # Rank 1's own error, not rank 0's secondary "[gloo] Connection closed by peer" or its SIGTERM.
    assert run.status is IterationStatus.FAILED, run
    assert run.error_message == "rank 1: ValueError: the metric broke on rank 1"
    assert "accuracy_failing_on_rank_1" in run.traceback and "Connection closed" not in run.traceback
    assert steps(tracker, run.id, "train/loss") == [5, 10]  # what rank 0 logged before is kept
