"""A Lightning fit logging every step to a tracking server that is SIGKILLed mid-run: restarted ~20 s
later on the same database and port, or never back (then a new server and `diary sync`). Afterwards
every point is stored exactly once and the status is SUCCEEDED; the fit never waits on the dead server
beyond the bounded flush. Also: interpreter exit flushes every writer before it ends any run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "lightning"))

from diary_models import TinyModel, loader, trainer  # noqa: E402

from diary_integrations import IterationStatus, LocalTracker  # noqa: E402
from diary_integrations.client import RemoteTracker, journal  # noqa: E402
from diary_integrations.lightning import DiaryLogger, TrackingWarning  # noqa: E402

from .journal_server import free_port, kill, start_server  # noqa: E402

try:
    from pytorch_lightning.callbacks import Callback
except ImportError:  # pragma: no cover - the unified package
    from lightning.pytorch.callbacks import Callback

pytestmark = pytest.mark.slow

STEPS = 1000
KEYS = ("train_loss", "epoch")  # what TinyModel's fit logs at every step
USER, PASSWORD = "ada", "journal-test-Pa55word-9f3b"
AUTH = {"DIARY_ENABLE_AUTH": "true", "DIARY_JWT_SECRET": "journal-tests-secret-0123456789abcdefghijklmnop",
        "DIARY_ADMIN_PASSWORD": "journal-tests-admin-Pa55"}


class Outage(Callback):
    """SIGKILLs the server at `kill_at`; with `wait_at`, holds training there until `back` is set (the
    server restarted), so the restart is certain to happen while the fit still logs."""

    def __init__(self, server, kill_at: int, back: threading.Event | None = None, wait_at: int | None = None):
        self.server, self.kill_at, self.back, self.wait_at = server, kill_at, back, wait_at
        self.killed = threading.Event()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step == self.kill_at:
            # Mid-run means after the server took some points: on a fast machine the first interval
            # write may not have happened yet at this step. Under load the run may even still be
            # opening on its thread (its points held on this one): reading iteration_id hands them over.
            assert trainer.logger.iteration_id is not None
            deadline = time.monotonic() + 30
            while trainer.logger.written == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            kill(self.server)
            self.killed.set()
        if self.wait_at is not None and step == self.wait_at:
            assert self.back is not None and self.back.wait(90), "the server did not come back"


def setup_database(tmp_path: Path) -> str:
    db = f"sqlite:///{tmp_path / 'server.db'}"
    LocalTracker(db).create_user(USER, PASSWORD, is_admin=True)
    return db


def remote(url: str) -> RemoteTracker:
    return RemoteTracker(url, username=USER, password=PASSWORD, replay_journal=False)


def fit(url: str, tmp_path: Path, *callbacks) -> tuple[DiaryLogger, float]:
    logger = DiaryLogger("P", "MLP", tracker=remote(url), save_dir=tmp_path)
    started = time.monotonic()
    trainer(logger, max_epochs=1, callbacks=list(callbacks)).fit(TinyModel(), loader(n=8 * STEPS))
    return logger, time.monotonic() - started


def check_stored(url: str, iteration_id: int) -> tuple[int, int]:
    """(points lost, points duplicated) of the run, with every key at every step expected once."""
    metrics = remote(url).get_metrics(iteration_id)
    seen = Counter((m.key, m.step) for m in metrics)
    expected = {(key, step) for key in KEYS for step in range(STEPS)}
    lost = len(expected - set(seen))
    duplicated = sum(n - 1 for n in seen.values())
    return lost, duplicated


def test_fit_survives_a_server_killed_and_restarted_20s_later(tmp_path):
    db, port = setup_database(tmp_path), free_port()
    server = start_server(tmp_path, db, port, AUTH)
    back = threading.Event()
    outage = Outage(server, kill_at=200, back=back, wait_at=STEPS - 200)
    servers = [server]

    def restart() -> None:
        outage.killed.wait(120)
        time.sleep(20)
        servers.append(start_server(tmp_path, db, port, AUTH))
        back.set()

    restarter = threading.Thread(target=restart, daemon=True)
    restarter.start()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            logger, seconds = fit(server.url, tmp_path, outage)
        restarter.join(30)
        lost, duplicated = check_stored(server.url, logger.iteration_id)
        print(f"\nMEASURE restart: fit {seconds:.1f} s (20 s of it the held outage), lost {lost}, "
              f"duplicated {duplicated}, written {logger.written}, journaled {logger.journaled}")
        assert (lost, duplicated) == (0, 0)
        assert remote(server.url).get_iteration(logger.iteration_id).status is IterationStatus.SUCCEEDED
        assert logger.written == len(KEYS) * STEPS and logger.journaled == 0 and logger.dropped == 0
        assert not [w for w in caught if issubclass(w.category, TrackingWarning)]  # nothing is left to say
        assert journal.journal_files(server.url) == [] and journal.rejected_files(server.url) == []
    finally:
        for s in servers:
            s.stop()


def test_fit_with_the_server_gone_for_good_ends_promptly_and_diary_sync_delivers(tmp_path):
    db, port = setup_database(tmp_path), free_port()
    server = start_server(tmp_path, db, port, AUTH)
    try:
        baseline_logger, baseline = fit(server.url, tmp_path)  # the same fit without an outage
        assert baseline_logger.written == len(KEYS) * STEPS
        with pytest.warns(TrackingWarning) as caught:
            logger, seconds = fit(server.url, tmp_path, Outage(server, kill_at=STEPS // 3))
    finally:
        server.stop()
    added = seconds - baseline
    [warning] = [str(w.message) for w in caught if issubclass(w.category, TrackingWarning)]
    path = journal.journal_path(server.url, logger.iteration_id)
    assert f"kept in the local journal {path}" in warning and "`diary sync`" in warning
    assert logger.written > 0 and logger.journaled > 0 and logger.dropped == 0
    assert logger.written + logger.journaled == len(KEYS) * STEPS
    text = path.read_text()
    assert PASSWORD not in text and "authorization" not in text.lower()
    assert logger.tracker.token and logger.tracker.token not in text
    records = list(journal.read_records(path))
    assert records[-1]["kind"] == "end" and all(r["kind"] == "points" for r in records[:-1])
    assert sum(r["count"] for r in records[:-1]) == logger.journaled

    server = start_server(tmp_path, db, port, AUTH)
    env = {**os.environ, "DIARY_USERNAME": USER, "DIARY_PASSWORD": PASSWORD}
    try:
        command = [sys.executable, "-m", "diary_integrations.cli", "sync"]
        dry = subprocess.run([*command, "--dry-run"], capture_output=True, text=True, env=env, timeout=60)
        assert dry.returncode == 0, dry.stderr
        assert dry.stdout.startswith(f"would send iteration {logger.iteration_id} on {server.url}: "
                                     f"{len(records)} writes ({logger.journaled} points, the end: SUCCEEDED)")
        assert path.exists() and remote(server.url).get_iteration(logger.iteration_id).status is IterationStatus.RUNNING
        done = subprocess.run([*command, "--uri", server.url], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        sent = f"sent {len(records)} of {len(records)} writes of iteration {logger.iteration_id}"
        assert done.stdout.startswith(sent)
        again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
        assert again.stdout.startswith("nothing to send")
        lost, duplicated = check_stored(server.url, logger.iteration_id)
        print(f"\nMEASURE gone: fit {seconds:.1f} s vs {baseline:.1f} s without outage (+{added:.1f} s), "
              f"journaled {logger.journaled}, lost {lost}, duplicated {duplicated} after diary sync")
        assert (lost, duplicated) == (0, 0)
        assert remote(server.url).get_iteration(logger.iteration_id).status is IterationStatus.SUCCEEDED
        assert not path.exists() and journal.rejected_files(server.url) == []
    finally:
        server.stop()
    assert added < 15, f"the fit took {added:.1f} s longer with the server gone"


def test_hyperparameters_logged_while_the_server_is_away_wait_in_the_journal(tmp_path):
    """Hyperparameters are written on the training thread (a run still opening when Lightning logs them
    gets them when it is handed over, possibly after the server died). Before the fix, a server away at
    that moment raised TransportError out of `fit`; now the batch waits in the run's journal and goes
    ahead of the run's end: delivered if the server is back by then, else named in the end's warning."""
    db, port = setup_database(tmp_path), free_port()
    server = start_server(tmp_path, db, port, AUTH)
    back = DiaryLogger("P", "MLP", tracker=remote(server.url), save_dir=tmp_path)
    gone = DiaryLogger("P", "MLP", tracker=remote(server.url), save_dir=tmp_path)
    runs = back.iteration_id, gone.iteration_id
    kill(server)
    back.log_hyperparams({"lr": 0.1, "layers": 3})
    gone.log_hyperparams({"lr": 0.2, "layers": 4})
    with pytest.warns(TrackingWarning) as caught:
        gone.finalize("success")
    [warning] = [str(w.message) for w in caught if issubclass(w.category, TrackingWarning)]
    assert "2 hyperparameters and the end of the run could not reach the server" in warning, warning
    server = start_server(tmp_path, db, port, AUTH)
    try:
        with warnings.catch_warnings(record=True) as quiet:
            warnings.simplefilter("always")
            back.finalize("success")
        assert not [w for w in quiet if issubclass(w.category, TrackingWarning)]
        journal.replay_server(remote(server.url))  # what `diary sync` does for the run that ended away
        tracker = remote(server.url)
        stored = {run: {p.key: p.value for p in tracker.get_parameters(run)} for run in runs}
        assert stored == {runs[0]: {"lr": "0.1", "layers": "3"}, runs[1]: {"lr": "0.2", "layers": "4"}}
        assert {tracker.get_iteration(run).status for run in runs} == {IterationStatus.SUCCEEDED}
        assert journal.journal_files(server.url) == [] and journal.rejected_files(server.url) == []
    finally:
        server.stop()


class KillAtTrainEnd(Callback):
    """SIGKILLs the server once training is over, before Lightning's finalize sends the run's end."""

    def __init__(self, server) -> None:
        self.server = server

    def on_train_end(self, trainer, pl_module) -> None:
        assert trainer.logger.iteration_id is not None
        kill(self.server)


@pytest.mark.parametrize("fit_end", ["delivered", "journaled"])
def test_test_after_fit_with_the_server_away_continues_the_run_in_the_journal(tmp_path, fit_end):
    """`fit` then `test` while the server is away. Before the fix, test's first log reopened the run with
    a plain PATCH, which raised TransportError out of `trainer.test` (fit's end delivered); or, with fit's
    end itself in the journal, test's points and end queued behind it and were refused at replay. Now the
    reopen is one of the run's journaled writes: test goes on, and one replay makes the run whole."""
    db, port = setup_database(tmp_path), free_port()
    server = start_server(tmp_path, db, port, AUTH)
    logger = DiaryLogger("P", "MLP", tracker=remote(server.url), save_dir=tmp_path)
    model = TinyModel()
    tr = trainer(logger, max_epochs=1, callbacks=[KillAtTrainEnd(server)] if fit_end == "journaled" else [])
    if fit_end == "journaled":
        with pytest.warns(TrackingWarning, match="the end of the run could not reach the server"):
            tr.fit(model, loader())
    else:
        tr.fit(model, loader())
        kill(server)
    run = logger.iteration_id
    with pytest.warns(TrackingWarning, match="kept in the local journal"):
        tr.test(model, loader(seed=2), verbose=False)
    server = start_server(tmp_path, db, port, AUTH)
    try:
        # Back, but before the journal is replayed the server still has the run SUCCEEDED: a heartbeat then
        # must not report it ended behind this process's back (the logger would never send test's end).
        assert journal.has_pending(server.url, run)
        remote(server.url).heartbeat(run)
        journal.replay_server(remote(server.url))  # what `diary sync` does
        tracker = remote(server.url)
        it = tracker.get_iteration(run)
        assert it.status is IterationStatus.SUCCEEDED
        seen = Counter((m.key, m.step) for m in tracker.get_metrics(run))
        expected = {(key, step) for key in KEYS for step in range(4)} | {("test_loss", 4), ("epoch", 4)}
        assert set(seen) == expected and set(seen.values()) == {1}  # nothing lost, nothing twice
        assert it.notes.count("another Trainer entry point") == 1, it.notes
        assert journal.journal_files(server.url) == [] and journal.rejected_files(server.url) == []
    finally:
        server.stop()


def test_checkpoints_that_cannot_be_stored_do_not_keep_the_run_from_ending(tmp_path):
    """`log_model=True` with the server gone at the end: storing the checkpoints fails. Before the fix
    that failure skipped the run's end (neither sent nor journaled), so a fit that succeeded stayed
    RUNNING until a reaper called it KILLED. Now it is a warning of its own, and the end is journaled."""
    db, port = setup_database(tmp_path), free_port()
    server = start_server(tmp_path, db, port, AUTH)
    logger = DiaryLogger("P", "MLP", tracker=remote(server.url), save_dir=tmp_path, log_model=True)
    tr = trainer(logger, max_epochs=1, enable_checkpointing=True, callbacks=[KillAtTrainEnd(server)])
    with pytest.warns(TrackingWarning) as caught:
        tr.fit(TinyModel(), loader())
    messages = [str(w.message) for w in caught if issubclass(w.category, TrackingWarning)]
    assert any("the checkpoints could not be stored" in m for m in messages), messages
    assert any("the end of the run could not reach the server" in m for m in messages), messages
    server = start_server(tmp_path, db, port, AUTH)
    try:
        journal.replay_server(remote(server.url))
        assert remote(server.url).get_iteration(logger.iteration_id).status is IterationStatus.SUCCEEDED
    finally:
        server.stop()


EXIT_SCRIPT = """
import pickle, sys
from diary_integrations.lightning import DiaryLogger

logger = DiaryLogger("P", "script", uri=sys.argv[1], save_dir=sys.argv[2], flush_interval=600)
logger.log_metrics({"loss": 1.0}, step=0)
copy = pickle.loads(pickle.dumps(logger))  # as a DataLoader worker or a callback's deepcopy would hold it
copy.log_metrics({"loss": 2.0}, step=1)
print("ITERATION", logger.iteration_id, flush=True)
"""


def test_exit_flushes_every_writer_before_it_ends_the_run(tmp_path):
    # Before the fix the exit handler ended the run first: "could not write 1 metric points to iteration
    # 1: ... has ended (SUCCEEDED)". The order does not depend on the tracker kind.
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    env = {k: v for k, v in os.environ.items() if k not in {"DIARY_DRIVER_ITERATION_ID", "LOCAL_RANK", "RANK"}}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(EXIT_SCRIPT), uri, str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "could not write" not in done.stderr and "has ended" not in done.stderr, done.stderr
    iteration_id = int(done.stdout.split()[-1])
    tracker = LocalTracker(tmp_path / "runs.db")
    assert [(m.step, m.value) for m in tracker.get_metrics(iteration_id)] == [(0, 1.0), (1, 2.0)]
    assert tracker.get_iteration(iteration_id).status is IterationStatus.SUCCEEDED
