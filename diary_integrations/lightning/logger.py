"""DiaryLogger: the Lightning Logger protocol over a diary tracker. Its arguments' checks (options.py),
opening and resuming the run (opening.py, resume.py), the DDP ranks (ranks.py), metrics and
hyperparameters on the training thread (metrics.py, params.py), checkpoints (checkpoints.py) and the end
of the run (ending.py) live in their own modules."""

from __future__ import annotations

import os
import sys
import time
from argparse import Namespace
from collections.abc import Mapping
from typing import Any, Literal

from .. import distributed, exit_hooks
from ..reporting import TrackingWarning
from ..tracker.validation import check_step
from . import checkpoints, ending, opening, process_state, ranks
from ._compat import Logger, _add_prefix, rank_zero_experiment
from .metrics import buffer_points, checked_values
from .options import check_options
from .params import hyperparameters, write_parameters

__all__ = ["DiaryLogger", "TrackingWarning"]


class DiaryLogger(Logger):
    """Lightning logger over a diary tracker (embedded SQLite/PostgreSQL or a tracking server).

    `project` and `experiment` are names (found, or created if missing) or ids; `uri` defaults as in
    `connect()`. `parent_iteration_id` makes the run a child of a sweep driver. `per_rank=True` gives a
    driver iteration and a child iteration per distributed rank. `log_model=True` stores the best
    checkpoint as a resource, `"all"` every saved one; with `register_as="fraud-mlp"` a SUCCEEDED fit
    also registers the best checkpoint as the next version of that model. `version=ITERATION_ID`
    continues that iteration; `resume="auto"` continues the KILLED or RUNNING iteration of this job
    (`run_key=`, else the scheduler's job id). `save_dir=None` keeps checkpoints under the Trainer's `default_root_dir`.
    `system_metrics=True` (the default) records the process tree's CPU and memory, the machine's and the
    GPUs' every `system_metrics_interval` seconds as `system/...` metrics, from a thread of its own.
    On a database the tracker runs in a sidecar process (`sidecar=False`: in this one), so the training
    process never imports SQLAlchemy.
    """

    LOGGER_JOIN_CHAR = "-"

    def __init__(
        self,
        project: str | int,
        experiment: str | int,
        uri: str | os.PathLike[str] | None = None,
        *,
        parent_iteration_id: int | None = None,
        per_rank: bool = False,
        log_model: bool | Literal["all"] = False,
        save_dir: str | os.PathLike[str] | None = None,
        prefix: str = "",
        version: int | str | None = None,
        resume: Literal["never", "auto"] = "never",
        run_key: str | None = None,
        notes: str = "",
        tracker: Any = None,
        open_in_background: bool = True,
        sidecar: bool = True,
        batch_size: int = 1000,
        max_pending_batches: int = 16,
        flush_interval: float = 1.0,
        settle_timeout: float = 30.0,
        write_retries: int = 5,
        register_as: str | None = None,
        system_metrics: bool = True,
        system_metrics_interval: float = 10.0,
    ) -> None:
        super().__init__()
        arguments = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        self._version, self._uri = check_options(**arguments)  # every argument, checked by name
        self._register_as = register_as
        self._system_metrics, self._system_metrics_interval = system_metrics, float(system_metrics_interval)
        self._tracker = tracker
        self._project, self._experiment_ref = project, experiment
        self._parent_iteration_id = parent_iteration_id
        self._per_rank, self._log_model, self._notes, self._prefix = per_rank, log_model, notes, prefix
        self._save_dir = None if save_dir is None else os.fspath(save_dir)
        self._resume, self._run_key, self._background, self._sidecar = resume, run_key, open_in_background, sidecar
        self._batch_size, self._max_pending_batches = batch_size, max_pending_batches
        self._flush_interval, self._settle_timeout, self._write_retries = flush_interval, settle_timeout, write_retries
        self._experiment_id: int | None = None
        self._experiment_name: str | None = experiment if isinstance(experiment, str) else None
        self._run_id: int | None = None  # the run's iteration (the driver when per_rank), opened on first use
        self._rank_id: int | None = None  # this rank's child (per_rank only)
        self._owns_run = False
        self._own_tracker = False  # made by this logger (not given as tracker=): its sidecar ends with the run
        self._synced = False
        self._checkpoint_root: str | None = None  # learned from ModelCheckpoint when save_dir is None
        process_state.reset(self)
        if per_rank:
            ranks.init_driver(self)

    def __getstate__(self) -> dict[str, Any]:
        return process_state.picklable(self)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        process_state.reset(self)

    # -- what Lightning and users read ------------------------------------------------------------

    @property
    def tracker(self) -> Any:
        """The tracker this logger writes through (connected on first use), on every rank."""
        if self._tracker is None:
            with self._connecting:  # the run may be opening on its own thread at the same moment
                if self._tracker is None:
                    from ..connection import connect

                    self._tracker = connect(self._uri, sidecar=self._sidecar)
                    self._own_tracker = True
        return self._tracker

    @property
    def experiment(self) -> Any:
        """The tracker on rank 0 (`logger.experiment.create_metric(logger.iteration_id, ...)`), a dummy
        that swallows every call on other ranks, as Lightning's loggers do (per-rank writes: `per_rank=True`
        and `logger.tracker` with `logger.rank_iteration_id`). Every rank's first access (Lightning's
        setup) agrees on the run: it is a collective under DDP."""
        ranks.prepare_targets(self)
        return self._rank_zero_experiment

    @property
    @rank_zero_experiment
    def _rank_zero_experiment(self) -> Any:
        return self._tracker if self._tracker is not None else opening.LazyTracker(self)

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
        """The run's iteration id, as text (ModelCheckpoint saves under `save_dir/name/version/checkpoints`)."""
        run_id = self.iteration_id
        return None if run_id is None else str(run_id)

    @property
    def iteration_id(self) -> int | None:
        """The iteration this run writes (the driver when `per_rank`); None on ranks > 0 before setup."""
        if self._run_id is None and not self._per_rank and distributed.current_rank() == 0:
            if self._opener is None:
                self._open_run()
            self._settle_opening(raise_failure=True)
        return self._run_id

    @property
    def rank_iteration_id(self) -> int | None:
        """This rank's child iteration (only with `per_rank=True`)."""
        return self._rank_id

    @property
    def experiment_id(self) -> int:
        return self._resolve_experiment()

    @property
    def save_dir(self) -> str | None:
        """Where checkpoints go. Not given, it is None until the first checkpoint is saved, so
        ModelCheckpoint uses the Trainer's `default_root_dir`; from then on that root."""
        return self._save_dir or self._checkpoint_root

    @property
    def root_dir(self) -> str:
        return os.path.join(self._save_dir or self._checkpoint_root or os.getcwd(), str(self.name))

    @property
    def log_dir(self) -> str:
        """`save_dir/name/version` (with no `save_dir`: the Trainer's root once a checkpoint was saved, else
        the working directory, which is the Trainer's default root)."""
        return os.path.join(self.root_dir, str(self.version))

    @property
    def resumed_from(self) -> str | None:
        """The checkpoint a resumed run found in its log dir (pass it to `fit(ckpt_path=...)`), else None."""
        self.iteration_id  # noqa: B018 - opens (resumes) the run
        return self._resumed_from

    @property
    def written(self) -> int:
        """How many metric points the background writer has stored so far."""
        return 0 if self._writer is None else self._writer.written

    @property
    def journaled(self) -> int:
        """How many metric points wait in the local journal because the server could not be reached."""
        return 0 if self._writer is None else self._writer.journaled

    @property
    def dropped(self) -> int:
        """How many metric points could not be written (each loss is reported at finalize)."""
        return 0 if self._writer is None else self._writer.dropped

    # -- logging ----------------------------------------------------------------------------------

    def log_hyperparams(self, params: dict[str, Any] | Namespace | None, *args: Any, **kwargs: Any) -> None:
        """Hyperparameters, flattened with "/" and sanitised as Lightning's loggers do, become parameters of
        the run (rank 0 writes them). Re-logging the same values is harmless; a value changed by a later
        `fit` keeps the first one, with a warning and a notes line (docs/decisions.md)."""
        flat = hyperparameters(params)
        if not ranks.prepare_targets(self):
            if self._opener is not None:
                self._early_params.update(flat)
            return
        if self._owns_run and flat:
            write_parameters(self, flat)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Buffer one step of metrics (no I/O); the background writer stores them."""
        targets = self._targets or ranks.prepare_targets(self)
        if not targets and self._opener is None:
            return  # a rank that writes nothing
        if step is not None and (type(step) is not int or step < 0):
            step = check_step(step)
        if self._prefix:
            metrics = _add_prefix(dict(metrics), self._prefix, self.LOGGER_JOIN_CHAR)
        if not targets:
            if not self._settle_opening(raise_failure=True, wait=False):
                # The run is still being opened: checked now, kept until it exists.
                self._early.append((checked_values(self, metrics), step, time.time()))
                return
            targets = self._targets
        buffer_points(self, targets, metrics, step, time.time())

    def save(self) -> None:
        """Nothing to do: the Trainer calls this after every `log_metrics`, so it must cost nothing."""

    def flush(self, timeout: float | None = 120.0) -> bool:
        """Write every buffered metric point now."""
        self._settle_opening(raise_failure=False)
        return True if self._writer is None else self._writer.flush(timeout)

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Lightning calls this (rank 0 only) after each checkpoint save. The metrics logged so far are
        written now, so a run resumed from this checkpoint has every step before it."""
        self._checkpoint_callback = checkpoint_callback
        dirpath = getattr(checkpoint_callback, "dirpath", None)
        if self._save_dir is None and dirpath:  # save_dir/name/version/checkpoints
            self._checkpoint_root = os.path.dirname(os.path.dirname(os.path.dirname(os.fspath(dirpath))))
        self.flush(timeout=30.0)
        # Lightning saves a step's checkpoint before it logs that step's metrics: those are written at
        # once too, when they arrive (the next log_metrics).
        self._flush_next_log = True
        if self._log_model == "all" and self._run_id is not None:
            if self._ended_ok:
                self._reopen()
            checkpoints.store_checkpoints(self, best_only=False)

    def finalize(self, status: str) -> None:
        """Flush, then end the iterations with the truth: `success` → SUCCEEDED; `failed` → FAILED with
        the exception (Lightning calls this inside its `except`), or KILLED for Ctrl-C / SIGTERM.
        Never raises: a tracker that fails here (a server outage) gets a TrackingWarning, not the run."""
        exc = sys.exc_info()[1] if status not in ending.SUCCESS else None
        if status not in ending.SUCCESS and exc is None:
            exc = ending.Reported(status)
        ending.conclude(self, exc)

    # -- the run's iterations -----------------------------------------------------------------------

    def _resolve_experiment(self) -> int:
        """The experiment id, finding or creating the project and experiment by name."""
        if self._experiment_id is None:
            from ..resolve import experiment_for

            self._experiment_id = experiment_for(self.tracker, self._project, self._experiment_ref)
        return self._experiment_id

    def _open_run(self) -> None:
        opening.open_run(self)

    def _open_rank_child(self, rank: int) -> int:
        return opening.open_rank_child(self, rank)

    def _checkpoint_dir_for(self, iteration_id: int) -> str:
        return os.path.join(self._save_dir or self._checkpoint_root or os.getcwd(), str(self.name), str(iteration_id))

    def _open_in_background(self) -> bool:
        return opening.start_in_background(self)

    def _settle_opening(self, *, raise_failure: bool, wait: bool = True) -> bool:
        return opening.settle(self, raise_failure=raise_failure, wait=wait)

    def _reopen(self) -> None:
        opening.reopen_ended(self)

    def _mark_unfinished(self) -> None:
        """This process now holds a RUNNING iteration: if no finalize ends it, interpreter exit does."""
        self._unfinished_pid = os.getpid()
        exit_hooks.hold(self, lambda exc: ending.end_at_exit(self, exc), lambda: self._writer)
