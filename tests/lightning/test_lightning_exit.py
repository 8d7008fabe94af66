"""DiaryLogger when things go wrong outside the training step: the tracking server goes away before the
run's end, and scripts that exit without Lightning ever calling `finalize`."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from server_harness import start_cli_server

sys.path.insert(0, str(Path(__file__).parent))

from diary_models import TinyModel, loader, trainer  # noqa: E402

from diary_integrations import IterationStatus, connect  # noqa: E402
from diary_integrations.lightning import DiaryLogger, TrackingWarning  # noqa: E402

try:
    from pytorch_lightning.callbacks import Callback
except ImportError:  # pragma: no cover - the unified package
    from lightning.pytorch.callbacks import Callback

pytestmark = pytest.mark.slow


class KillServer(Callback):
    """Kills the tracking server when training ends: after the last step, before the logger's finalize."""

    def __init__(self, server) -> None:
        self.server = server

    def on_train_end(self, trainer, pl_module) -> None:
        # The run is opened off the training thread: wait until it is, since this outage is about the
        # end of a run (a server gone before the run could be opened loses the run's start instead).
        assert trainer.logger.iteration_id is not None
        self.server.process.kill()
        self.server.process.wait()


def test_server_outage_before_finalize_does_not_break_fit(tmp_path):
    server = start_cli_server(tmp_path, f"sqlite:///{tmp_path / 'server.db'}")
    try:
        # A long flush interval keeps every metric point buffered until finalize, when the server is gone;
        # one retry (not five) keeps the test short, the path is the same.
        logger = DiaryLogger("P", "MLP", uri=server.url, save_dir=tmp_path, flush_interval=600, write_retries=1)
        model = TinyModel()
        with pytest.warns(TrackingWarning) as caught:
            trainer(logger, callbacks=[KillServer(server)]).fit(model, loader())  # returns: training was fine
        assert server.process.poll() is not None
        [warning] = [w for w in caught if issubclass(w.category, TrackingWarning)]
        text = str(warning.message)
        # Nothing is lost: the points (8 steps of train_loss and epoch) and the end wait in the journal.
        assert text.startswith(f"diary: iteration {logger.iteration_id}: 16 metric points and the end of the run "
                               "could not reach the server and are kept in the local journal ")
        assert f"iteration-{logger.iteration_id}.jsonl; `diary sync` sends them" in text and "\n" not in text
        assert logger.dropped == 0 and logger.written == 0 and logger.journaled == 16
        assert model.layer.weight.grad is not None  # the model trained
    finally:
        server.stop()


SCRIPT = """
import sys
from diary_integrations.lightning import DiaryLogger

logger = DiaryLogger("P", "script", uri=sys.argv[1], save_dir=sys.argv[2])
logger.log_hyperparams({"lr": 0.1})
for step in range(5):
    logger.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
print("ITERATION", logger.iteration_id, flush=True)
if sys.argv[3] == "raise":
    raise ValueError("the data loader found no files")
"""


def run_script(tmp_path: Path, how: str, prelude: str = "") -> tuple[subprocess.CompletedProcess[str], object]:
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    env = {k: v for k, v in os.environ.items() if k not in {"DIARY_DRIVER_ITERATION_ID", "LOCAL_RANK", "RANK"}}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(prelude) + SCRIPT, uri, str(tmp_path), how],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    )
    [iteration_id] = [int(line.split()[1]) for line in done.stdout.splitlines() if line.startswith("ITERATION")]
    return done, connect(uri).get_iteration(iteration_id)


def test_script_that_exits_normally_without_finalize_succeeds(tmp_path):
    done, it = run_script(tmp_path, "exit")
    assert done.returncode == 0, done.stderr
    assert it.status is IterationStatus.SUCCEEDED and it.end_date is not None and it.error_message == ""
    tracker = connect(f"sqlite:///{tmp_path / 'runs.db'}")
    assert [m.step for m in tracker.get_metrics(it.id, key="loss")] == [0, 1, 2, 3, 4]  # flushed before the end
    assert {p.key: p.value for p in tracker.get_parameters(it.id)} == {"lr": "0.1"}


def test_script_dying_of_an_uncaught_exception_fails_with_it(tmp_path):
    done, it = run_script(tmp_path, "raise")
    assert done.returncode == 1
    assert "ValueError: the data loader found no files" in done.stderr  # Python's own report is untouched
    assert it.status is IterationStatus.FAILED
    assert it.error_message == "ValueError: the data loader found no files"
    assert "Traceback (most recent call last)" in it.traceback and "<string>" in it.traceback
    assert len(connect(f"sqlite:///{tmp_path / 'runs.db'}").get_metrics(it.id, key="loss")) == 5


def test_uncaught_exception_chains_to_the_previous_excepthook(tmp_path):
    prelude = """
    import sys
    def earlier_hook(kind, value, tb):
        print("EARLIER HOOK", value, flush=True)
    sys.excepthook = earlier_hook
    """
    done, it = run_script(tmp_path, "raise", prelude)
    assert "EARLIER HOOK the data loader found no files" in done.stdout  # installed before ours, still called
    assert it.status is IterationStatus.FAILED and it.error_message == "ValueError: the data loader found no files"


def test_runs_lightning_finalised_are_not_ended_again_at_exit(tmp_path):
    """Lightning's finalize decides; the exit handler leaves those runs alone: a failed fit stays FAILED
    with the training step's error, and fit-then-test (whose test reopens the run) keeps the end its
    test's finalize wrote, although both scripts then exit normally."""
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from diary_models import TinyModel, loader, trainer
from diary_integrations import connect
from diary_integrations.lightning import DiaryLogger

failed = DiaryLogger("P", "fit", uri={uri!r}, save_dir={str(tmp_path)!r})
try:
    trainer(failed).fit(TinyModel(fail_at_step=2), loader())
except ValueError:
    pass
tested = DiaryLogger("P", "fit", uri={uri!r}, save_dir={str(tmp_path)!r})
tr = trainer(tested)
tr.fit(TinyModel(), loader())
tr.test(tr.model, loader(seed=2))
print("ITERATIONS", failed.iteration_id, tested.iteration_id, flush=True)
print("ENDED", connect({uri!r}).get_iteration(tested.iteration_id).end_date.isoformat(), flush=True)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()}
    failed_id, tested_id = map(int, lines["ITERATIONS"])
    tracker = connect(uri)
    failed = tracker.get_iteration(failed_id)
    assert failed.status is IterationStatus.FAILED and failed.error_message == "ValueError: boom at step 2 on rank 0"
    tested = tracker.get_iteration(tested_id)
    assert tested.status is IterationStatus.SUCCEEDED and tested.end_date.isoformat() == lines["ENDED"][0]
