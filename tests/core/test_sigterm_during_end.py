"""A SIGTERM that arrives while a failing iteration's end is being written waits for the write.

This is what torchrun does to the surviving ranks 0.1 s after one rank dies: the survivor is usually
writing its own end (its collective just broke) and, killed then, stayed RUNNING."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

from diary_integrations import ExperimentStatus, IterationStatus, LocalTracker

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from diary_integrations import LocalTracker
    from diary_integrations.distributed import rank_iteration
    from diary_integrations.tracker.lifecycle import IterationRun

    real = LocalTracker(sys.argv[1])

    class TerminatedWhileEnding:
        def __getattr__(self, name):
            return getattr(real, name)

        def end_iteration(self, *args, **kwargs):
            os.kill(os.getpid(), signal.SIGTERM)  # a launcher stopping this rank right now
            return real.end_iteration(*args, **kwargs)

    tracker = TerminatedWhileEnding()
    if sys.argv[3] == "rank_iteration":
        os.environ["DIARY_DRIVER_ITERATION_ID"] = sys.argv[4]
        block = rank_iteration(tracker, int(sys.argv[2]))
    else:
        block = IterationRun(tracker, int(sys.argv[2]))
    with block:
        raise ValueError("bad shard")
    """
)


@pytest.mark.parametrize("how", ["with_iteration", "rank_iteration"])
def test_sigterm_while_the_end_is_written_waits_for_it(tmp_path, how):
    url = f"sqlite:///{tmp_path / 'term.db'}"
    tracker = LocalTracker(url)
    project_id, _ = tracker.create_project("P")
    experiment_id = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "E").id
    driver_id, _ = tracker.create_iteration(experiment_id)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, url, str(experiment_id), how, str(driver_id)],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == -signal.SIGTERM, done.stderr[-2000:]  # it still dies of the signal, after
    [own] = [it for it in tracker.get_iterations(experiment_id) if it.id != driver_id]
    assert own.status is IterationStatus.FAILED
    assert own.error_message == "ValueError: bad shard"
    driver = tracker.get_iteration(driver_id)
    if how == "rank_iteration":  # its part of the driver is written too
        assert driver.status is IterationStatus.FAILED
        assert driver.error_message == "rank 0: ValueError: bad shard"
    else:
        assert driver.status is IterationStatus.RUNNING
