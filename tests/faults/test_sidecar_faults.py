"""DiaryLogger's sidecar (the LocalTracker in a process beside the training process) when processes die:
the sidecar SIGKILLed mid-run, the training process SIGKILLed, Ctrl-C sent to the whole process group.
Each case counts what was stored against what was logged: nothing lost, nothing written twice, and a
status that tells the truth."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from processes import left

LIGHTNING_TESTS = Path(__file__).resolve().parents[1] / "lightning"
sys.path.insert(0, str(LIGHTNING_TESTS))

from diary_models import TinyModel, loader, trainer  # noqa: E402

from diary_integrations import ExperimentStatus, IterationStatus, connect  # noqa: E402
from diary_integrations.lightning import DiaryLogger  # noqa: E402
from diary_integrations.sidecar import SidecarTracker  # noqa: E402

try:
    from pytorch_lightning.callbacks import Callback
except ImportError:  # pragma: no cover - the unified package
    from lightning.pytorch.callbacks import Callback

pytestmark = pytest.mark.slow


def stored_steps(uri: str, iteration_id: int) -> Counter[tuple[str, int]]:
    return Counter((m.key, m.step) for m in connect(uri).get_metrics(iteration_id))


class KillSidecar(Callback):
    """SIGKILLs the logger's sidecar at the given steps (after a flush, and again with points buffered)."""

    def __init__(self, at_steps: set[int]) -> None:
        self.at_steps = at_steps
        self.killed: list[int] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step in self.at_steps:
            logger = trainer.logger
            assert logger.iteration_id is not None
            if trainer.global_step % 2:
                logger.flush()
            if logger.tracker.pid in (None, *self.killed):  # no call since the last kill: this one starts the next
                logger.tracker.get_iteration(logger.iteration_id)
            pid = logger.tracker.pid
            assert pid is not None and pid not in self.killed
            os.kill(pid, signal.SIGKILL)
            self.killed.append(pid)


def test_a_sidecar_killed_mid_run_is_replaced_and_nothing_is_lost_or_duplicated(tmp_path):
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    killer = KillSidecar({3, 6, 9})
    logger = DiaryLogger("P", "sidecar killed", uri=uri, save_dir=tmp_path, flush_interval=0.05)
    trainer(logger, max_epochs=3, callbacks=[killer]).fit(TinyModel(), loader())
    assert len(killer.killed) == 3
    run = connect(uri).get_iteration(logger.iteration_id)
    assert run.status is IterationStatus.SUCCEEDED and run.error_message == ""
    stored = stored_steps(uri, logger.iteration_id)
    expected = {("train_loss", step) for step in range(12)} | {("epoch", step) for step in range(12)}
    assert set(stored) == expected  # 0 lost
    assert max(stored.values()) == 1  # 0 duplicated
    assert logger.dropped == 0


def test_a_write_in_flight_when_the_sidecar_dies_is_applied_exactly_once(tmp_path):
    """The call is sent again to a new sidecar under the idempotency key it carried: one copy whether
    the first sidecar died before or after its commit."""
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    tracker = SidecarTracker(uri)
    project, _ = tracker.create_project("P")
    experiment, _ = tracker.create_experiment(project, ExperimentStatus.IN_PROGRESS, "E")
    iteration, _ = tracker.create_iteration(experiment)
    points = [("loss", float(i), i, None) for i in range(300_000)]  # long enough to be killed while writing
    first = tracker.pid
    killer = threading.Timer(0.3, os.kill, (first, signal.SIGKILL))
    killer.start()
    try:
        assert tracker.log_metric_points(iteration, points) == 300_000
    finally:
        killer.cancel()
    assert tracker.pid != first
    stored = stored_steps(uri, iteration)
    assert len(stored) == 300_000 and max(stored.values()) == 1
    tracker.close(wait=True)


SCRIPT = """
import json, os, signal, sys, time
# Ctrl-C as in a terminal, even when the test runs as a background job (which starts with SIGINT ignored).
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {lightning_tests!r})
from diary_models import TinyModel, loader, trainer
from diary_integrations.lightning import DiaryLogger
try:
    from pytorch_lightning.callbacks import Callback
except ImportError:
    from lightning.pytorch.callbacks import Callback

class Report(Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == 3:
            lg = trainer.logger
            lg.flush()
            report = os.path.join(sys.argv[2], "first.json")
            with open(report + ".tmp", "w") as out:
                json.dump({{"iteration": lg.iteration_id, "sidecar": lg.tracker.pid}}, out)
            os.replace(report + ".tmp", report)  # whole or absent for the test that waits for it
            if sys.argv[3] == "wait":
                time.sleep(120)  # killed or interrupted here

logger = DiaryLogger("P", "script", uri=sys.argv[1], save_dir=sys.argv[2])
try:
    trainer(logger, max_epochs=3, callbacks=[Report()]).fit(TinyModel(), loader())
finally:
    print(json.dumps({{"sqlalchemy": "sqlalchemy" in sys.modules, "sidecar": logger.tracker.pid}}), flush=True)
"""


def start_script(tmp_path: Path, how: str) -> tuple[subprocess.Popen[str], dict, str]:
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    env = {k: v for k, v in os.environ.items() if k not in {"DIARY_DRIVER_ITERATION_ID", "LOCAL_RANK", "RANK"}}
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SCRIPT.format(lightning_tests=str(LIGHTNING_TESTS))), uri,
         str(tmp_path), how],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env, start_new_session=True,
    )
    # A file, not a first line on stdout: reading one line buffers what follows, which communicate() then
    # never sees (the run-through script prints its last line at once).
    report = tmp_path / "first.json"
    deadline = time.monotonic() + 120
    while not report.exists():
        exited = process.poll() is not None and not report.exists()  # written just before a quick exit counts
        if exited or time.monotonic() > deadline:
            process.kill()
            pytest.fail(process.communicate()[1])
        time.sleep(0.05)
    return process, json.loads(report.read_text()), uri


def test_the_training_process_never_imports_sqlalchemy(tmp_path):
    process, first, uri = start_script(tmp_path, "run")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    last = json.loads(out.strip().splitlines()[-1])
    assert last["sqlalchemy"] is False  # the sidecar held the LocalTracker
    assert last["sidecar"] is None  # and it was let go at the run's end
    assert left(first["sidecar"])
    run = connect(uri).get_iteration(first["iteration"])
    assert run.status is IterationStatus.SUCCEEDED
    stored = stored_steps(uri, run.id)
    assert len(stored) == 24 and max(stored.values()) == 1
    environment = connect(uri).get_environment(run.id)
    assert environment.entrypoint == "<interactive>"  # the training script's (python -c), not the sidecar's -m


def test_a_sigkilled_training_process_takes_its_sidecar_along_and_its_run_is_killed(tmp_path):
    process, first, uri = start_script(tmp_path, "wait")
    process.kill()
    process.wait(timeout=30)
    assert left(first["sidecar"])  # it left when the pipe closed
    run = connect(uri).get_iteration(first["iteration"])  # liveness: the run lived by the training process
    assert run.status is IterationStatus.KILLED
    assert run.error_message == f"process {process.pid} exited without ending the run"
    stored = stored_steps(uri, run.id)
    assert {("train_loss", s) for s in range(2)} <= set(stored) and max(stored.values()) == 1  # flushed: kept


def test_ctrl_c_to_the_process_group_ends_the_run_killed_through_the_same_sidecar(tmp_path):
    process, first, uri = start_script(tmp_path, "wait")
    os.killpg(process.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches every process of the group
    out, err = process.communicate(timeout=120)
    assert out.strip(), err  # the script's last line, printed after fit returned
    last = json.loads(out.strip().splitlines()[-1])
    run = connect(uri).get_iteration(first["iteration"])
    assert run.status is IterationStatus.KILLED, err
    assert last["sidecar"] is None and left(first["sidecar"])
    # The sidecar ignored the SIGINT (else it would have died of a KeyboardInterrupt, printed here, and
    # the end would have needed a second one).
    assert "sidecar/__main__.py" not in err, err
    stored = stored_steps(uri, run.id)
    assert {("train_loss", s) for s in range(2)} <= set(stored) and max(stored.values()) == 1
