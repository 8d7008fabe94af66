"""DiaryLogger: a PyTorch Lightning logger that writes one iteration per run (and, with `per_rank=True`,
one child iteration per DDP rank under a driver iteration).

    logger = DiaryLogger(project="Fraud detection", experiment="MLP", uri="sqlite:///runs.db")
    trainer = pl.Trainer(max_epochs=5, logger=logger)
    trainer.fit(model, datamodule)
    logger.iteration_id

Hyperparameters become parameters, metrics a series per key by global step, checkpoints resources on
request, and `finalize` a truthful status. Metrics are buffered in memory and written by a background
thread, so the training step never waits on storage. Works with `pytorch_lightning` or `lightning`.
"""

from __future__ import annotations

import atexit
import dataclasses
import enum
import logging
import multiprocessing
import os
import sys
import threading
import time
from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

try:
    from pytorch_lightning.loggers.logger import Logger
except ImportError:  # the unified `lightning` package
    from lightning.pytorch.loggers.logger import Logger

from . import distributed
from .reporting import TrackingWarning, announce, warn_tracking
from .resolve import experiment_for
from .tracker.enums import IterationStatus
from .tracker.errors import Conflict, Unprocessable
from .tracker.lifecycle import Heartbeat
from .tracker.validation import MAX_PARAMETER_VALUE, check_key, check_metric_value, check_step
from .writer import MetricWriter, flush_all

__all__ = ["DiaryLogger", "TrackingWarning", "flatten_hyperparameters"]

log = logging.getLogger("diary_integrations")

_SUCCESS = {"success", "finished"}
_KILLED = {"aborted", "killed", "interrupted"}
_CLOSE_TIMEOUT = 120.0  # how long the end of a run waits for buffered metrics to be written


class DiaryLogger(Logger):
    """Lightning logger over a diary tracker (embedded SQLite/PostgreSQL or a tracking server).

    `project` and `experiment` are names (found, or created if missing) or ids. `uri` defaults as in
    `connect()`. `parent_iteration_id` makes the run a child of a sweep driver. `per_rank=True` gives a
    driver iteration (rank 0's) and a child iteration per distributed rank. `log_model=True` stores the
    best checkpoint as a resource, `"all"` every saved one; with `register_as="fraud-mlp"` a SUCCEEDED
    fit also registers the best checkpoint as the next version of that model.
    """

    def __init__(
        self,
        project: str | int,
        experiment: str | int,
        uri: str | os.PathLike[str] | None = None,
        *,
        parent_iteration_id: int | None = None,
        per_rank: bool = False,
        log_model: bool | Literal["all"] = False,
        save_dir: str | os.PathLike[str] = "diary_logs",
        notes: str = "",
        tracker: Any = None,
        batch_size: int = 1000,
        max_pending_batches: int = 16,
        flush_interval: float = 1.0,
        settle_timeout: float = 30.0,
        write_retries: int = 5,
        register_as: str | None = None,
    ) -> None:
        super().__init__()
        # The model registry (registry.py): the best checkpoint of a SUCCEEDED fit becomes a model version.
        if register_as is not None and not (log_model and isinstance(register_as, str) and register_as.strip()):
            raise Unprocessable("register_as needs log_model and a non-empty model name", field="register_as")
        self._register_as = register_as
        _check_name_or_id(project, "project")
        _check_name_or_id(experiment, "experiment")
        if parent_iteration_id is not None:
            _check_name_or_id(parent_iteration_id, "parent_iteration_id", names=False)
        if not isinstance(per_rank, bool):
            raise Unprocessable(f"per_rank must be true or false, got {per_rank!r}", field="per_rank")
        if not (isinstance(log_model, bool) or log_model == "all"):
            raise Unprocessable(f"log_model must be False, True or 'all', got {log_model!r}", field="log_model")
        if not isinstance(save_dir, (str, os.PathLike)):
            raise Unprocessable(f"save_dir must be a path, got {type(save_dir).__name__}", field="save_dir")
        if not isinstance(notes, str):
            raise Unprocessable(f"notes must be a string, got {type(notes).__name__}", field="notes")
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise Unprocessable(f"batch_size must be a positive integer, got {batch_size!r}", field="batch_size")
        if not (isinstance(max_pending_batches, int) and max_pending_batches >= 1):
            raise Unprocessable(
                f"max_pending_batches must be a positive integer, got {max_pending_batches!r}",
                field="max_pending_batches",
            )
        if not (isinstance(write_retries, int) and not isinstance(write_retries, bool) and write_retries >= 0):
            raise Unprocessable(
                f"write_retries must be a non-negative integer, got {write_retries!r}", field="write_retries"
            )
        self._project = project
        self._experiment_ref = experiment
        self._uri = None if uri is None else os.fspath(uri)
        if tracker is None:  # a bad URI is refused here, not inside trainer.fit
            from .connection import check_uri, resolve_uri

            check_uri(resolve_uri(self._uri))
        self._tracker = tracker
        self._parent_iteration_id = parent_iteration_id
        self._per_rank = per_rank
        self._log_model = log_model
        self._save_dir = os.fspath(save_dir)
        self._notes = notes
        self._batch_size = batch_size
        self._max_pending_batches = max_pending_batches
        self._flush_interval = flush_interval
        self._settle_timeout = settle_timeout
        self._write_retries = write_retries
        self._experiment_id: int | None = None
        self._experiment_name: str | None = experiment if isinstance(experiment, str) else None
        self._run_id: int | None = None  # the run's iteration: the driver when per_rank
        self._rank_id: int | None = None  # this rank's child (per_rank only)
        self._owns_run = False
        self._synced = False
        self._reset_process_state()
        if per_rank:
            self._init_driver()

    def _reset_process_state(self) -> None:
        """State that belongs to one process: rebuilt after pickling (ddp_spawn workers)."""
        self._writer: MetricWriter | None = None
        self._writing = False  # the writer's thread was started in this entry point
        self._targets: tuple[int, ...] = ()
        self._ended_ok: set[int] = set()
        self._known_keys: set[str] = set()
        self._next_step: dict[str, int] = {}
        self._checkpoint_callback: Any = None
        self._stored_checkpoints: dict[tuple[str, int], int] = {}
        self._reported_dropped = 0  # metric points already reported as lost
        self._unfinished_pid: int | None = None  # set while this process has iterations no finalize ended

    def __getstate__(self) -> dict[str, Any]:
        if (self._run_id is None and not self._per_rank and _pickled_for_a_new_process()
                and distributed.launch_rank() == 0):
            # ddp_spawn: its workers get no finalize when they fail, only this launching process does;
            # it creates the run now, so it knows the iteration to end (with the failed worker's error).
            try:
                self._create_run()
            except Exception as error:  # noqa: BLE001 - never stop the workers from starting
                log.warning("diary: the launching process could not create the run: %s", error)
        state = self.__dict__.copy()
        for key in ("_writer", "_targets", "_ended_ok", "_checkpoint_callback", "_stored_checkpoints",
                    "_unfinished_pid"):
            state.pop(key, None)
        state["_rank_id"] = None
        state["_synced"] = False
        state["_owns_run"] = False
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_process_state()

    # -- what Lightning and users read ------------------------------------------------------------

    @property
    def tracker(self) -> Any:
        """The tracker this logger writes through (connected on first use)."""
        if self._tracker is None:
            from .connection import connect

            self._tracker = connect(self._uri)
        return self._tracker

    @property
    def experiment(self) -> Any:
        """The tracker, for custom logging (`logger.experiment.create_metric(logger.iteration_id, ...)`).
        First access (on every rank, in Lightning's setup) creates or attaches this process's iteration."""
        self._prepare_targets()
        return self.tracker

    @property
    def name(self) -> str | None:
        """The experiment's name."""
        if self._experiment_name is None:
            experiment_id = self._resolve_experiment()
            record = self.tracker.get_experiment(experiment_id)
            self._experiment_name = record.name if record is not None else str(experiment_id)
        return self._experiment_name

    @property
    def version(self) -> str | None:
        """The run's iteration id, as text (ModelCheckpoint builds `save_dir/name/version/checkpoints`)."""
        run_id = self.iteration_id
        return None if run_id is None else str(run_id)

    @property
    def iteration_id(self) -> int | None:
        """The iteration this run writes (the driver when `per_rank`); None on ranks > 0 before setup."""
        if self._run_id is None and not self._per_rank and distributed.current_rank() == 0:
            self._create_run()
        return self._run_id

    @property
    def rank_iteration_id(self) -> int | None:
        """This rank's child iteration (only with `per_rank=True`)."""
        return self._rank_id

    @property
    def experiment_id(self) -> int:
        return self._resolve_experiment()

    @property
    def save_dir(self) -> str:
        return self._save_dir

    @property
    def root_dir(self) -> str:
        return os.path.join(self._save_dir, str(self.name))

    @property
    def log_dir(self) -> str:
        return os.path.join(self._save_dir, str(self.name), str(self.version))

    @property
    def written(self) -> int:
        """How many metric points the background writer has stored so far."""
        return 0 if self._writer is None else self._writer.written

    @property
    def journaled(self) -> int:
        """How many metric points wait in the local journal because the server could not be reached
        (`diary sync`, or the next connection to that server, delivers them)."""
        return 0 if self._writer is None else self._writer.journaled

    @property
    def dropped(self) -> int:
        """How many metric points could not be written (the tracker refused them, or stayed unreachable
        through every retry); each loss is also reported with a TrackingWarning at finalize."""
        return 0 if self._writer is None else self._writer.dropped

    # -- iterations -------------------------------------------------------------------------------

    def _resolve_experiment(self) -> int:
        """The experiment id, finding or creating the project and experiment by name."""
        if self._experiment_id is None:
            self._experiment_id = experiment_for(self.tracker, self._project, self._experiment_ref)
        return self._experiment_id

    def _open(self, parent: int | None, *, snapshot: bool | None = None, name: str = "") -> int:
        iteration_id, _ = self.tracker.create_iteration(
            self._resolve_experiment(), parent_iteration_id=parent, notes=self._notes, snapshot=snapshot,
            **({"name": name} if name else {}),
        )
        Heartbeat.of(self.tracker).add(iteration_id)
        self._mark_unfinished()
        return iteration_id

    def _create_run(self) -> None:
        self._run_id = self._open(self._parent_iteration_id)
        self._owns_run = True
        announce(self.tracker, f"run #{self._run_id} (checkpoints under {self.log_dir})")

    def _init_driver(self) -> None:
        """The launching process (rank 0) creates the driver now and exports its id, so the rank
        processes Lightning starts from here inherit it; those processes adopt it instead."""
        if distributed.launch_rank() == 0:
            self._create_run()
            distributed.export_driver(self._run_id)  # type: ignore[arg-type]
        else:
            self._run_id = distributed.driver_from_env()

    def _prepare_targets(self) -> tuple[int, ...]:
        """Create or attach the iterations this process writes; () on ranks that write nothing."""
        if self._targets and (self._synced or not self._per_rank or not distributed.process_group_ready()):
            return self._targets
        if not self._per_rank:
            rank = distributed.current_rank()
            if distributed.process_group_ready() and distributed.world_size() > 1 and not self._synced:
                # A collective (Lightning's setup touches `experiment` on every rank at once): every rank
                # learns the run, so a rank that fails records its own error there (rank 0 sees a peer's
                # "connection closed").
                if rank == 0 and self._run_id is None:
                    self._create_run()
                self._run_id = distributed.broadcast_driver(self._run_id if rank == 0 else None)
                self._synced = True
            if rank != 0:
                return ()
            if self._run_id is None:
                self._create_run()
            self._owns_run = True  # also in a ddp_spawn worker that was handed the run by its launcher
            self._targets = (self._run_id,)  # type: ignore[assignment]
            return self._targets
        rank = distributed.current_rank()
        if distributed.process_group_ready() and distributed.world_size() > 1 and not self._synced:
            # A collective: Lightning reaches this on every rank at once (setup touches `experiment`).
            if rank == 0 and self._run_id is None:
                self._create_run()
            self._run_id = distributed.broadcast_driver(self._run_id if rank == 0 else None)
            self._synced = True
            self._owns_run = rank == 0
            if self._owns_run:
                Heartbeat.of(self.tracker).add(self._run_id)
        elif rank != 0:
            return ()  # a rank > 0 learns the driver from rank 0's broadcast once the process group exists
        elif self._run_id is None:
            self._create_run()
        if self._rank_id is None:
            tracker = self.tracker
            if self._experiment_id is None:
                self._experiment_id = tracker.get_iteration(self._run_id).experiment_id
            self._rank_id = self._open(self._run_id, snapshot=False, name=f"rank {rank}")
            tracker.log_parameters(
                self._rank_id, {distributed.RANK_PARAMETER: rank, "world_size": distributed.world_size()}
            )
        # Rank 0 also writes the driver: its metrics are the run's (synced ones are the same everywhere).
        self._targets = (self._rank_id, self._run_id) if self._owns_run else (self._rank_id,)  # type: ignore[assignment]
        return self._targets

    def _reopen(self) -> None:
        """A second entry point (fit, then test) writes into the iterations the first one ended."""
        for iteration_id in sorted(self._ended_ok):
            self.tracker.update_iteration(iteration_id, status=IterationStatus.RUNNING)
            Heartbeat.of(self.tracker).add(iteration_id)
            self._mark_unfinished()
        self._ended_ok.clear()

    def _mark_unfinished(self) -> None:
        """This process now holds a RUNNING iteration: if no finalize ends it, interpreter exit does."""
        self._unfinished_pid = os.getpid()
        _unfinished.add(self)
        _install_exit_hooks()

    def _metric_writer(self) -> MetricWriter:
        if self._writer is None:
            self._writer = MetricWriter(
                self.tracker, batch_size=self._batch_size, max_batches=self._max_pending_batches,
                interval=self._flush_interval, retries=self._write_retries,
            )
        return self._writer

    # -- logging ----------------------------------------------------------------------------------

    def log_hyperparams(self, params: dict[str, Any] | Namespace | None, *args: Any, **kwargs: Any) -> None:
        """Hyperparameters, flattened with "/", become parameters of the run (rank 0 writes them).
        Re-logging the same values (fit, then test) is harmless; a changed value is a Conflict."""
        flat = flatten_hyperparameters(params)
        targets = self._prepare_targets()
        if not targets or not self._owns_run or not flat:
            return
        if self._ended_ok:
            self._reopen()
        self.tracker.log_parameters(self._run_id, flat)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Buffer one step of metrics (no I/O); the background writer stores them."""
        targets = self._targets or self._prepare_targets()
        if not targets:
            return
        if self._ended_ok:
            self._reopen()
        if step is not None and (type(step) is not int or step < 0):
            step = check_step(step)
        known = self._known_keys
        next_step = self._next_step
        now = time.time()
        values = []
        for key, value in metrics.items():
            if type(value) is not float:
                value = _to_float(key, value)
            if key not in known:
                check_key(key, "metrics key")
                known.add(key)
            at = next_step.get(key, 0) if step is None else step
            if at >= next_step.get(key, 0):
                next_step[key] = at + 1
            elif key == "epoch" and at == next_step[key] - 1:
                continue  # Lightning repeats `epoch` with every call at a step (train, then val): keep one
            values.append((key, value, at))
        points = [(target, key, value, at, now) for target in targets for key, value, at in values]
        writer = self._metric_writer()
        writer.extend(points)
        if not self._writing:
            # Start the background writer at the first points (it starts by itself only when a batch
            # fills), so what is buffered reaches the tracker every `flush_interval`: a peer's failure
            # can block this rank's main thread in a collective until another rank has ended the run.
            self._writing = True
            writer._start()

    def save(self) -> None:
        """Nothing to do: the Trainer calls this after every `log_metrics`, so it must cost nothing."""

    def flush(self, timeout: float | None = 120.0) -> bool:
        """Write every buffered metric point now."""
        return True if self._writer is None else self._writer.flush(timeout)

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Lightning calls this (rank 0 only) after each checkpoint save."""
        self._checkpoint_callback = checkpoint_callback
        if self._log_model == "all" and self._run_id is not None:
            if self._ended_ok:
                self._reopen()
            self._store_checkpoints(best_only=False)

    # -- the end ----------------------------------------------------------------------------------

    def finalize(self, status: str) -> None:
        """Flush, then end the iterations with the truth: `success` → SUCCEEDED; `failed` → FAILED with
        the exception (Lightning calls this inside its `except`), or KILLED for Ctrl-C / SIGTERM.
        Never raises: a tracker that fails here (a server outage) gets a TrackingWarning, not the run."""
        exc = sys.exc_info()[1] if status not in _SUCCESS else None
        if status not in _SUCCESS and exc is None:
            exc = _Reported(status)
        self._conclude(exc)

    def _conclude(self, exc: BaseException | None) -> None:
        pending = 0
        # Closing (not just flushing) stops the writer thread until the next entry point logs again. Over
        # HTTP it waits at most $DIARY_FLUSH_TIMEOUT and journals the rest, before the end is sent.
        if self._writer is not None:
            wait = self._writer.default_timeout()
            if not self._writer.close(timeout=_CLOSE_TIMEOUT if wait is None else wait):
                pending = self._writer.backlog()
        self._writing = False
        failure: Exception | None = None
        if self._run_id is not None:  # else this process never logged anything (e.g. a failure before setup)
            try:
                if self._ended_ok:
                    self._reopen()  # the previous entry point ended them; this one decides now
                if self._log_model and self._owns_run and self._checkpoint_callback is not None:
                    self._store_checkpoints(best_only=self._log_model is True)
                    self._record_best_checkpoint()
                    if self._register_as is not None and exc is None:
                        from .registry import register_checkpoint

                        best = getattr(self._checkpoint_callback, "best_model_path", "")
                        try:  # a registration that fails must not keep the run from ending truthfully
                            register_checkpoint(self.tracker, self._run_id, best, self._register_as,
                                                stored=self._stored_checkpoints)
                        except Exception as error:  # noqa: BLE001
                            log.warning("diary: best checkpoint not registered as %r: %s", self._register_as, error)
                if self._per_rank:
                    self._finalize_rank(exc)
                else:
                    self._finalize_shared(exc)
            except Exception as error:  # noqa: BLE001 - tracking must never break (or replace) the run's end
                failure = error
        # Whether or not it could be written, this call decided the status: exit must not end it again
        # (cleared only now, since reopening above marks the run unfinished).
        self._unfinished_pid = None
        _unfinished.discard(self)
        self._report_losses(failure, pending)

    def _report_losses(self, failure: Exception | None, pending: int) -> None:
        """One TrackingWarning for what this run's end could not record: the status, and how many
        metric points were lost (refused, or given up on after the retries) or still unwritten."""
        dropped = self.dropped - self._reported_dropped
        self._reported_dropped = self.dropped
        # Points journaled in an outage and delivered once the server answered again are not reported.
        journaled = self._writer.journaled if self._writer is not None else 0
        kept = getattr(failure, "journal", None)
        if kept is not None or journaled:
            # The server is unreachable: nothing is lost, it waits in the journal. One warning says where.
            files = set(self._writer.journals) if self._writer is not None and journaled else set()
            if kept is not None:
                files.add(kept)
            what = []
            if journaled:
                what.append(f"{journaled} metric point{'s' if journaled != 1 else ''}")
            if kept is not None:
                what.append("the end of the run")
            lost_now = []
            if dropped:
                lost_now.append(f"; {dropped} metric point{'s' if dropped != 1 else ''} could not be written")
            plural = len(what) > 1 or journaled > 1
            warn_tracking(
                f"iteration {self._run_id}: {' and '.join(what)} could not reach the server and "
                f"{'are' if plural else 'is'} kept in the local journal {', '.join(map(str, sorted(files)))}; "
                f"`diary sync` sends {'them' if plural else 'it'} (exactly once)" + "".join(lost_now),
                logger=log, stacklevel=4,
            )
            if kept is not None or not (failure or pending):
                return
        lost = []
        if dropped:
            lost.append(f"{dropped} metric point{'s' if dropped != 1 else ''} could not be written")
        if pending:
            lost.append(f"{pending} metric point{'s' if pending != 1 else ''} still unwritten after "
                        f"{_CLOSE_TIMEOUT:g} s")
        if failure is None and not lost:
            return
        run = f"iteration {self._run_id}"
        if failure is not None:
            what = f"could not record the end of {run}"
            warn_tracking("; ".join([what, *lost]), failure, logger=log, stacklevel=4)
        else:
            last = self._writer.errors[-1] if self._writer is not None and self._writer.errors else None
            warn_tracking(f"{run}: " + "; ".join(lost), last and f"last error: {last}", logger=log, stacklevel=4)

    def _end(self, iteration_id: int, exc: BaseException | None) -> None:
        if exc is None:
            status, message, trace = IterationStatus.SUCCEEDED, "", ""
        else:
            status, message, trace, _ = distributed.describe_rank_failure(exc)
        Heartbeat.of(self.tracker).discard(iteration_id)
        if distributed.end_quietly(self.tracker, iteration_id, status, message, trace) and exc is None:
            self._ended_ok.add(iteration_id)

    def _finalize_shared(self, exc: BaseException | None) -> None:
        """Without `per_rank`: rank 0 owns the one iteration; a rank that really failed ends it with its
        own error (the first end wins), never with a peer's "connection closed"."""
        assert self._run_id is not None
        if exc is None and not self._owns_run:
            return
        if self._owns_run:
            Heartbeat.of(self.tracker).discard(self._run_id)
        if distributed.conclude_shared(
            self.tracker, self._run_id, rank=distributed.current_rank(), world=distributed.world_size(),
            exc=exc, owns_run=self._owns_run, hand_over=self._hand_over(),
        ):
            self._ended_ok.add(self._run_id)

    def _hand_over(self) -> float:
        """How long a failing rank > 0 lets rank 0's writer store the run's buffered metrics (it writes
        what it holds every `flush_interval`) before ending the run it shares with rank 0."""
        return 2 * self._flush_interval + 1.0

    def _finalize_rank(self, exc: BaseException | None) -> None:
        assert self._run_id is not None
        if self._rank_id is not None:
            self._end(self._rank_id, exc)
        if self._owns_run:
            Heartbeat.of(self.tracker).discard(self._run_id)
        # Without a child of its own this is ddp_spawn's launching process, whose workers are gone;
        # conclude_rank hands a relayed worker exception to conclude_launcher.
        distributed.conclude_rank(
            self.tracker, self._run_id, rank=distributed.current_rank(), exc=exc, owns_driver=self._owns_run,
            settle_timeout=self._settle_timeout, hand_over=self._hand_over(),
        )
        if exc is None and self._owns_run:
            driver = self.tracker.get_iteration(self._run_id)
            if driver is not None and driver.status is IterationStatus.SUCCEEDED:
                self._ended_ok.add(self._run_id)

    # -- checkpoints ------------------------------------------------------------------------------

    def _store_checkpoints(self, *, best_only: bool) -> None:
        """Copy checkpoint files into resources of the experiment, each file version once."""
        callback = self._checkpoint_callback
        paths = [getattr(callback, "best_model_path", "")]
        if not best_only:
            paths += list(getattr(callback, "best_k_models", {}) or {})
            paths.append(getattr(callback, "last_model_path", ""))
        for path in dict.fromkeys(p for p in paths if p):
            file = Path(path)
            if not file.is_file():
                continue
            version = (str(file.resolve()), file.stat().st_mtime_ns)
            if version in self._stored_checkpoints:
                continue
            score = _score_of(callback, path)
            description = f"checkpoint of iteration {self._run_id}"
            if score is not None and getattr(callback, "monitor", None):
                description += f" ({callback.monitor}={score:g})"
            resource_id = self.tracker.create_resource(
                self._resolve_experiment(), f"iteration-{self._run_id}/checkpoints/{file.name}", file,
                description=description,
            ).id
            self._stored_checkpoints[version] = resource_id

    def _record_best_checkpoint(self) -> None:
        """The best checkpoint's path, monitor and resource as parameters, its score as a metric."""
        callback = self._checkpoint_callback
        best = getattr(callback, "best_model_path", "")
        if not best or not Path(best).is_file():
            return
        file = Path(best)
        resource_id = self._stored_checkpoints.get((str(file.resolve()), file.stat().st_mtime_ns))
        params: dict[str, Any] = {"checkpoint/best_path": best}
        if getattr(callback, "monitor", None):
            params["checkpoint/monitor"] = callback.monitor
        if resource_id is not None:
            params["checkpoint/best_resource_id"] = resource_id
        try:
            self.tracker.log_parameters(self._run_id, params)
        except Conflict as error:  # a later entry point found a different best: keep the first, say so
            log.warning("diary: best checkpoint not recorded again: %s", error)
        score = _score_of(callback, best)
        if score is not None:
            step = max(self._next_step.values(), default=1) - 1
            self.tracker.log_metrics(self._run_id, {"checkpoint/best_score": score}, step=max(step, 0))


# Loggers holding iterations that no finalize has ended yet, ended at interpreter exit.
_unfinished: set[DiaryLogger] = set()
_uncaught: list[BaseException] = []  # the exception the process is exiting with, if any
_hooks_lock = threading.Lock()
_hooks_installed = False


def _install_exit_hooks() -> None:
    """Hook `sys.excepthook` (chaining to the hook it replaces) and register the exit handler, once."""
    global _hooks_installed
    with _hooks_lock:
        if _hooks_installed:
            return
        _hooks_installed = True
        previous = sys.excepthook

        def record_uncaught(kind: type[BaseException], value: BaseException, tb: Any) -> None:
            # At a REPL an error does not end the process: exiting later is not a failure.
            if not hasattr(sys, "ps1") and not sys.flags.interactive:
                _uncaught.append(value)
            previous(kind, value, tb)

        sys.excepthook = record_uncaught
        # Registered after writer.py's flush-at-exit, so it runs before it (atexit is last-in, first-out).
        atexit.register(_end_unfinished)


def _end_unfinished() -> None:
    """Interpreter exit: a run no finalize ended (logging without a Trainer, or an error before `fit`)
    ends FAILED with the uncaught exception the process is dying of, else SUCCEEDED; left RUNNING it
    would later be reaped as KILLED "heartbeat lost", which is false. Only the process that opened
    the iterations ends them (never a forked copy or a multiprocessing worker), by `finalize`'s rules."""
    if multiprocessing.parent_process() is not None:
        # A multiprocessing worker (ddp_spawn's ranks, mp.spawn): its target's exception was caught by
        # the worker's bootstrap, so no hook saw it and "SUCCEEDED" could be false. Its launcher ends
        # what the worker left (conclude_launcher), as it always has.
        return
    exc = _uncaught[-1] if _uncaught else None
    # Every writer first (an unpickled copy of a logger has its own), so no point of a run arrives after
    # its end and is refused. The loggers ended below report their own journaled points.
    flush_all(quiet=[lg._writer for lg in _unfinished if lg._writer is not None])
    for logger in list(_unfinished):
        if logger._unfinished_pid != os.getpid():
            continue
        try:
            logger._conclude(exc)
        except Exception as error:  # noqa: BLE001 - exit must go on
            log.error("diary: could not end iteration %s at exit: %s", logger._run_id, error)


def _pickled_for_a_new_process() -> bool:
    """True while multiprocessing pickles a process's arguments to start it (ddp_spawn, mp.spawn)."""
    from multiprocessing import context

    return context.get_spawning_popen() is not None


class _Reported(Exception):
    """Stands for a failure Lightning reported without an exception in flight."""

    def __init__(self, status: str) -> None:
        super().__init__(f"Lightning finalised the run with status {status!r}")
        self.status = status


def _score_of(callback: Any, path: str) -> float | None:
    score = (getattr(callback, "best_k_models", {}) or {}).get(path)
    if score is None and path == getattr(callback, "best_model_path", None):
        score = getattr(callback, "best_model_score", None)
    if score is None:
        return None
    try:
        return float(score.item() if hasattr(score, "item") else score)
    except (TypeError, ValueError):
        return None


def _check_name_or_id(value: Any, field: str, *, names: bool = True) -> None:
    if names and isinstance(value, str):
        if not value.strip():
            raise Unprocessable(f"{field} must not be empty", field=field)
        return
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return
    rule = "a name or a positive integer id" if names else "a positive integer id"
    raise Unprocessable(f"{field} must be {rule}, got {value!r}", field=field)


def _to_float(key: str, value: Any) -> float:
    """A metric value as a float: numbers, and one-element tensors or numpy scalars (via `.item()`)."""
    if type(value) is int:
        return float(value)
    item = getattr(value, "item", None)
    if item is not None and not isinstance(value, (str, bytes)):
        try:
            value = item()
        except (ValueError, RuntimeError):
            raise Unprocessable(
                f"metrics[{key!r}] must be a single number, got a {type(value).__name__} of several values",
                field=f"metrics[{key!r}]",
            ) from None
    return check_metric_value(value, f"metrics[{key!r}]")


def flatten_hyperparameters(params: Mapping[str, Any] | Namespace | None, sep: str = "/") -> dict[str, Any]:
    """Nested dicts, Namespaces, dataclasses and lists of dicts as one flat dict with "/"-joined keys.
    Leaves stay numbers, strings, bools or None; anything else becomes its text (callables are not called)."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Namespace):
            value = vars(value)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        if isinstance(value, Mapping):
            if not value and prefix:
                flat[prefix] = "{}"
            for key, inner in value.items():
                walk(f"{prefix}{sep}{key}" if prefix else str(key), inner)
            return
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, (Mapping, Namespace)) for v in value):
            for n, inner in enumerate(value):
                walk(f"{prefix}{sep}{n}", inner)
            return
        flat[prefix] = _parameter_value(value)

    if params is None:
        return flat
    if not isinstance(params, (Mapping, Namespace)):
        raise Unprocessable(
            f"params must be a dict or an argparse.Namespace, got {type(params).__name__}", field="params"
        )
    walk("", params)
    return flat


def _parameter_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return _parameter_value(value.value)
    size = getattr(value, "size", None)
    if hasattr(value, "item") and (size == 1 or size == () or callable(size) and value.numel() == 1):
        try:
            return value.item()
        except (ValueError, RuntimeError):
            pass
    if isinstance(value, type) or callable(value):
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', repr(value))}".lstrip(".")
    text = str(value)
    # The text of an object describes it; past the parameter limit it is cut, and says so.
    if len(text) > MAX_PARAMETER_VALUE:
        text = text[: MAX_PARAMETER_VALUE - 20] + " ... (truncated)"
    return text
