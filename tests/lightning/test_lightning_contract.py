"""DiaryLogger against the behaviours Lightning's own logger test-suite checks of its built-in loggers
(tests/tests_pytorch/loggers/test_all.py and test_logger.py, rewritten here for a real tracker): fit +
test metric history, pickling, prefix, the rank-zero experiment on 2 ranks, the tuners, several loggers,
numpy sanitising, a failed fit, log_dir; then resume by version and by resume="auto" under a requeue."""

from __future__ import annotations

import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from diary_models import TinyModel, loader, pl, trainer  # noqa: E402

from diary_integrations import IterationStatus, LocalTracker, connect  # noqa: E402
from diary_integrations.lightning import DiaryLogger, TrackingWarning  # noqa: E402

try:
    from pytorch_lightning.callbacks import Callback, ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger
    from pytorch_lightning.tuner import Tuner
except ImportError:  # pragma: no cover - the unified package
    from lightning.pytorch.callbacks import Callback, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger
    from lightning.pytorch.tuner import Tuner

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
OUR_THREADS = ("diary-heartbeat", "diary-open-run")


@pytest.fixture
def uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


def steps(tracker, iteration_id: int, key: str) -> list[int]:
    return [m.step for m in tracker.get_metrics(iteration_id, key=key)]


def our_threads(before: set[threading.Thread] | frozenset[threading.Thread] = frozenset()) -> list[str]:
    """Our threads still alive, but those in `before`: a test worker may hold another test's heartbeat
    (a tracker that test left open), which is not this fit's to end."""
    return [t.name for t in threading.enumerate() if t.name in OUR_THREADS and t.is_alive() and t not in before]


class HistoryLogger(DiaryLogger):
    """Lightning's StoreHistoryLogger: what the Trainer passed to `log_metrics`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.history: list[tuple[int, list[str]]] = []

    def log_metrics(self, metrics, step=None):
        super().log_metrics(metrics, step)
        self.history.append((step, sorted(metrics)))


def test_fit_then_test_metric_history(uri, tmp_path):
    before = set(threading.enumerate())
    logger = HistoryLogger("Contract", "history", uri=uri)
    tr = trainer(logger, default_root_dir=tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=1)
    model = TinyModel()
    tr.fit(model, loader(), loader(seed=1))
    tr.test(model, loader(seed=2))
    assert logger.history == [(0, ["epoch", "train_loss"]), (0, ["epoch", "val_loss"]), (1, ["epoch", "test_loss"])]
    tracker = connect(uri)
    it = tracker.get_iteration(logger.iteration_id)
    assert it.status is IterationStatus.SUCCEEDED
    assert (steps(tracker, it.id, "train_loss"), steps(tracker, it.id, "val_loss")) == ([0], [0])
    assert steps(tracker, it.id, "test_loss") == [1]
    assert our_threads(before) == []  # the heartbeat does not outlive finalize


def test_pickled_logger_and_trainer_keep_logging_into_the_run(uri, tmp_path):
    logger = DiaryLogger("Contract", "pickle", uri=uri, save_dir=tmp_path)
    _ = logger.experiment
    logger.log_metrics({"a": 1}, step=0)
    logger.save()
    pickle.dumps(logger)
    tr = pl.Trainer(max_epochs=1, logger=logger, default_root_dir=tmp_path)
    copy = pickle.loads(pickle.dumps(tr)).logger
    copy.log_metrics({"acc": 1.0}, step=0)
    assert (copy.name, copy.save_dir, copy.version) == (logger.name, logger.save_dir, logger.version)
    copy.flush()
    logger.finalize("success")
    tracker = connect(uri)
    assert {m.key for m in tracker.get_metrics(logger.iteration_id)} == {"a", "acc"}
    assert len(tracker.get_iterations(tracker.get_iteration(logger.iteration_id).experiment_id)) == 1


def test_prefix_joins_every_metric_key_with_a_dash(uri):
    logger = DiaryLogger("Contract", "prefix", uri=uri, prefix="tmp")
    logger.log_metrics({"test": 1.0}, step=0)
    logger.finalize("success")
    [point] = connect(uri).get_metrics(logger.iteration_id)
    assert (point.key, point.value, point.step) == ("tmp-test", 1.0, 0)


def test_experiment_is_rank_zero_only_on_two_ddp_ranks(uri, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DIARY_DRIVER_ITERATION_ID", "LOCAL_RANK", "RANK"}}
    done = subprocess.run(
        [sys.executable, str(HERE / "contract_scenario.py"), "rank_zero", uri],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "RANK 0 OK" in done.stdout and "RANK 1 OK" in done.stdout
    tracker = connect(uri)
    [it] = tracker.get_iterations(1)
    assert it.status is IterationStatus.SUCCEEDED
    assert {m.value for m in tracker.get_metrics(it.id, key="custom")} == {0.0}  # rank 1's call was swallowed


class TunedModel(TinyModel):
    def __init__(self, lr: float = 0.1, batch_size: int = 4) -> None:
        super().__init__(lr=lr)
        self.save_hyperparameters()

    def train_dataloader(self):
        return loader(32, batch_size=self.hparams.batch_size)

    def val_dataloader(self):
        return loader(16, batch_size=self.hparams.batch_size, seed=1)


@pytest.mark.parametrize("method", ["lr_find", "scale_batch_size"])
def test_tuners_keep_the_logger_and_the_fit_after_them_succeeds(uri, tmp_path, method):
    # Threads another test of this worker left behind are not this fit's (a heartbeat for a server gone).
    before = set(threading.enumerate())
    logger = DiaryLogger("Contract", "tuner", uri=uri)
    tr = trainer(logger, default_root_dir=tmp_path, max_epochs=1)
    model = TunedModel()
    kwargs = {"num_training": 5} if method == "lr_find" else {"max_trials": 2, "steps_per_trial": 1}
    getattr(Tuner(tr), method)(model, **kwargs)
    assert tr.logger is logger and model.logger is logger
    tr.fit(model)
    tracker = connect(uri)
    it = tracker.get_iteration(logger.iteration_id)
    assert it.status is IterationStatus.SUCCEEDED
    assert len(tracker.get_iterations(it.experiment_id)) == 1
    assert [t.name for t in threading.enumerate() if t not in before and t.name in OUR_THREADS and t.is_alive()] == []


def test_several_loggers_each_get_every_metric(uri, tmp_path):
    first, second = DiaryLogger("Contract", "a", uri=uri), DiaryLogger("Contract", "b", uri=uri)
    csv = CSVLogger(tmp_path)
    trainer([first, csv, second], default_root_dir=tmp_path).fit(TinyModel(), loader())
    tracker = connect(uri)
    assert first.iteration_id != second.iteration_id
    for logger in (first, second):
        assert steps(tracker, logger.iteration_id, "train_loss") == list(range(8))
        assert tracker.get_iteration(logger.iteration_id).status is IterationStatus.SUCCEEDED
    assert "train_loss" in (Path(csv.log_dir) / "metrics.csv").read_text()


def test_numpy_hyperparameters_are_sanitised_as_lightning_does(uri, tmp_path):
    logger = DiaryLogger("Contract", "numpy", uri=uri)
    logger.log_hyperparams(
        Namespace(
            **{
                "np.bool_": np.bool_(1),
                "np.byte": np.byte(2),
                "np.intc": np.intc(3),
                "np.int_": np.int_(4),
                "np.longlong": np.longlong(5),
                "np.single": np.single(6.0),
                "np.double": np.double(8.9),
                "np.csingle": np.csingle(7 + 2j),
                "np.cdouble": np.cdouble(9 + 4j),
                "array": np.arange(3),
            }
        )
    )
    logger.finalize("success")
    params = {p.key: p.value for p in connect(uri).get_parameters(logger.iteration_id)}
    assert params == {
        "np.bool_": "true",  # bools are stored as DearDiary and MLflow store them
        "np.byte": "2",
        "np.intc": "3",
        "np.int_": "4",
        "np.longlong": "5",
        "np.single": "6.0",
        "np.double": "8.9",
        "np.csingle": "(7+2j)",
        "np.cdouble": "(9+4j)",
        "array": "[0 1 2]",
    }


def test_a_complex_hyperparameter_does_not_break_fit(uri, tmp_path):
    logger = DiaryLogger("Contract", "numpy", uri=uri)
    model = TinyModel(optimizer={"phase": np.complex128(1 + 1j)})
    trainer(logger, default_root_dir=tmp_path, max_epochs=1).fit(model, loader())
    tracker = connect(uri)
    assert tracker.get_iteration(logger.iteration_id).status is IterationStatus.SUCCEEDED
    assert {p.key: p.value for p in tracker.get_parameters(logger.iteration_id)}["optimizer/phase"] == "(1+1j)"


def test_failed_fit_ends_failed_and_leaves_no_thread(uri, tmp_path):
    before = set(threading.enumerate())
    logger = DiaryLogger("Contract", "failed", uri=uri)
    with pytest.raises(ValueError, match="boom at step 2"):
        trainer(logger, default_root_dir=tmp_path).fit(TinyModel(fail_at_step=2), loader())
    it = connect(uri).get_iteration(logger.iteration_id)
    assert it.status is IterationStatus.FAILED and it.error_message == "ValueError: boom at step 2 on rank 0"
    assert our_threads(before) == []


def test_log_dir_and_checkpoints_follow_the_trainers_root_without_save_dir(uri, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "root"
    logger = DiaryLogger("Contract", "dirs", uri=uri)
    assert logger.save_dir is None  # so ModelCheckpoint takes the Trainer's root
    checkpoint = ModelCheckpoint()
    tr = trainer(logger, default_root_dir=root, max_epochs=1, enable_checkpointing=True, callbacks=[checkpoint])
    tr.fit(TinyModel(), loader())
    assert logger.save_dir == tr.log_dir == str(root)
    assert logger.log_dir == str(root / "dirs" / logger.version)
    assert Path(checkpoint.best_model_path).parent == root / "dirs" / logger.version / "checkpoints"
    assert not (tmp_path / "diary_logs").exists()
    given = DiaryLogger("Contract", "dirs", uri=uri, save_dir=tmp_path / "mine")
    assert given.log_dir == str(tmp_path / "mine" / "dirs" / given.version)
    given.finalize("success")


def test_a_second_fit_with_a_changed_hyperparameter_keeps_the_first_and_never_fails_the_run(uri, tmp_path):
    logger = DiaryLogger("Contract", "refit", uri=uri)
    tr = trainer(logger, default_root_dir=tmp_path, max_epochs=1)
    tr.fit(TinyModel(lr=0.1), loader())
    tracker = connect(uri)
    assert tracker.get_iteration(logger.iteration_id).status is IterationStatus.SUCCEEDED
    changed = r"changed hyperparameters, which keep their first values: lr: 0.1 -> 0.01"
    with pytest.warns(TrackingWarning, match=changed):
        trainer(logger, default_root_dir=tmp_path, max_epochs=1).fit(TinyModel(lr=0.01), loader())
    it = tracker.get_iteration(logger.iteration_id)
    assert it.status is IterationStatus.SUCCEEDED
    assert {p.key: p.value for p in tracker.get_parameters(it.id)}["lr"] == "0.1"
    assert "lr: 0.1 -> 0.01" in it.notes


def test_the_first_step_does_not_wait_for_the_database(tmp_path, monkeypatch):
    """The run is opened off the training thread: with the database locked by another writer, training
    starts (and logs) before the run's row exists; once the lock goes, every point is stored."""
    db = tmp_path / "runs.db"
    setup = LocalTracker(db)
    setup.create_project("Contract")
    setup.close()
    locker = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")
    seen: dict[str, object] = {}

    class Unlock(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 1 and "opened" not in seen:
                seen["opened"] = logger._run_id is not None
                seen["opening"] = "diary-open-run" in [t.name for t in threading.enumerate()]
                locker.execute("COMMIT")

    from diary_integrations import connection

    connecting_threads: list[str] = []
    real_connect = connection.connect

    def watched_connect(*args, **kwargs):  # the real connect; only which thread calls it is noted
        connecting_threads.append(threading.current_thread().name)
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(connection, "connect", watched_connect)
    logger = DiaryLogger("Contract", "slow database", uri=f"sqlite:///{db}")
    try:
        trainer(logger, default_root_dir=tmp_path, callbacks=[Unlock()]).fit(TinyModel(), loader())
    finally:
        locker.close()
    assert seen == {"opened": False, "opening": True}  # step 0 ran and logged with no run row yet
    assert connecting_threads == ["diary-open-run"]  # SQLAlchemy, the schema and migrations: off the training thread
    tracker = connect(f"sqlite:///{db}")
    assert steps(tracker, logger.iteration_id, "train_loss") == list(range(8))
    assert {p.key for p in tracker.get_parameters(logger.iteration_id)} >= {"lr"}
    assert tracker.get_iteration(logger.iteration_id).status is IterationStatus.SUCCEEDED


class FailOnce(TinyModel):
    """Fails at step 5 while `armed` (a class switch, not a hyperparameter, so the resumed run logs the
    same hyperparameters)."""

    armed = True

    def training_step(self, batch, batch_idx):
        if FailOnce.armed and self.global_step == 5:
            raise ValueError("preempted at step 5")
        return super().training_step(batch, batch_idx)


def test_resume_by_version_continues_the_iteration_from_its_checkpoint(uri, tmp_path):
    every_2 = dict(every_n_train_steps=2, save_top_k=-1, save_last=True)
    first = DiaryLogger("Contract", "resume", uri=uri, save_dir=tmp_path)
    FailOnce.armed = True
    with pytest.raises(ValueError, match="preempted"):
        trainer(first, max_epochs=3, enable_checkpointing=True, callbacks=[ModelCheckpoint(**every_2)]).fit(
            FailOnce(), loader()
        )
    FailOnce.armed = False
    again = DiaryLogger("Contract", "resume", uri=uri, save_dir=tmp_path, version=first.version)
    assert again.iteration_id == first.iteration_id
    assert again.resumed_from == str(tmp_path / "resume" / first.version / "checkpoints" / "last.ckpt")
    tracker = connect(uri)
    it = tracker.get_iteration(first.iteration_id)
    assert it.status is IterationStatus.RUNNING and it.error_message == ""
    assert (
        f"(was FAILED: ValueError: preempted at step 5): resumed with version={first.iteration_id}, from "
        f"checkpoint {again.resumed_from}" in it.notes
    )
    trainer(again, max_epochs=3, enable_checkpointing=True, callbacks=[ModelCheckpoint(**every_2)]).fit(
        FailOnce(), loader(), ckpt_path=again.resumed_from
    )
    it = tracker.get_iteration(first.iteration_id)
    assert it.status is IterationStatus.SUCCEEDED, it
    assert steps(tracker, it.id, "train_loss") == list(range(12)), (it, again._stored_last, again.dropped)
    assert len(tracker.get_iterations(it.experiment_id)) == 1


def test_resume_auto_continues_a_sigkilled_requeued_job(uri, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DIARY_DRIVER_ITERATION_ID", "LOCAL_RANK", "RANK"}}
    env.update(SLURM_JOB_ID="4242", SLURM_ARRAY_TASK_ID="3")
    args = [sys.executable, str(HERE / "contract_scenario.py"), "requeue", uri, str(tmp_path / "logs")]
    killed = subprocess.run(
        args, cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**env, "KILL_AT_STEP": "7"}
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-4000:]
    iteration_id = int(killed.stdout.split("ITERATION ")[1].split()[0])
    other = subprocess.run(
        args, cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**env, "SLURM_JOB_ID": "999"}
    )  # another job: its own run
    assert other.returncode == 0, other.stderr[-4000:]
    again = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0, again.stderr[-4000:]
    checkpoint = tmp_path / "logs" / "requeue" / str(iteration_id) / "checkpoints" / "last.ckpt"
    assert f"ITERATION {iteration_id} FROM {checkpoint}" in again.stdout
    tracker = connect(uri)
    it = tracker.get_iteration(iteration_id)
    assert it.status is IterationStatus.SUCCEEDED
    assert "resumed by run key 'slurm:4242_3', from checkpoint" in it.notes
    assert steps(tracker, it.id, "train_loss") == list(range(12))  # none twice, none lost
    assert {p.key: p.value for p in tracker.get_parameters(it.id)}["run_key"] == "slurm:4242_3"
    assert len(tracker.get_iterations(it.experiment_id)) == 2  # this job's, and job 999's


def test_per_rank_resume_continues_the_driver_and_each_ranks_own_child(uri, tmp_path, monkeypatch):
    monkeypatch.delenv("DIARY_DRIVER_ITERATION_ID", raising=False)
    first = DiaryLogger("Contract", "ranks", uri=uri, save_dir=tmp_path, per_rank=True)
    FailOnce.armed = True
    with pytest.raises(ValueError, match="preempted"):
        trainer(first, max_epochs=3).fit(FailOnce(), loader())
    FailOnce.armed = False
    monkeypatch.delenv("DIARY_DRIVER_ITERATION_ID", raising=False)
    again = DiaryLogger("Contract", "ranks", uri=uri, save_dir=tmp_path, per_rank=True, version=first.version)
    trainer(again, max_epochs=3).fit(FailOnce(), loader())
    tracker = connect(uri)
    assert again.iteration_id == first.iteration_id and again.rank_iteration_id == first.rank_iteration_id
    [child] = tracker.get_child_iterations(first.iteration_id)
    for it in (tracker.get_iteration(first.iteration_id), child):
        assert it.status is IterationStatus.SUCCEEDED and "(was FAILED: " in it.notes
    assert "rank 0 of resumed driver" in child.notes
    # No checkpoint: training starts again at step 0, and only the steps not stored yet are written.
    assert steps(tracker, child.id, "train_loss") == steps(tracker, first.iteration_id, "train_loss") == list(range(12))


def test_a_stale_process_never_ends_a_run_a_newer_one_reopened(tmp_path, monkeypatch):
    """A reaper ends the run behind the logger's back, a requeued copy reopens it: the stale logger learns
    it from its heartbeat (IterationEnded) and its finalize leaves the newer run's status alone."""
    monkeypatch.setenv("DIARY_HEARTBEAT_LEASE", "0.6")  # a beat every 0.2 s
    db = tmp_path / "runs.db"
    stale_tracker, newer = LocalTracker(db), LocalTracker(db)
    stale = DiaryLogger("Contract", "stale", tracker=stale_tracker, open_in_background=False)
    stale.log_metrics({"loss": 1.0}, step=0)
    run = stale.iteration_id
    assert newer.reap(older_than=0, force=True) == [run]
    deadline = time.monotonic() + 30
    while not stale_heard(stale_tracker, run) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stale_heard(stale_tracker, run)
    newer.reopen_iteration(run, expected_status=IterationStatus.KILLED, reason="requeued")
    stale.finalize("success")
    assert newer.get_iteration(run).status is IterationStatus.RUNNING  # still the newer process's run
    newer.end_iteration(run, IterationStatus.SUCCEEDED)
    stale_tracker.close()
    newer.close()


def stale_heard(tracker, iteration_id: int) -> bool:
    from diary_integrations.tracker.lifecycle import Heartbeat

    return iteration_id in Heartbeat.of(tracker).warned
