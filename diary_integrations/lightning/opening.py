"""Opening a run: connect, find or create the project and experiment, then create the iteration or
resume one (`version=`, `resume="auto"`). In a single process this runs on a background thread, so
the training thread never waits on the SQLAlchemy import, the environment snapshot or the first
writes; DiaryLogger keeps what is logged meanwhile in memory until the run exists (`settle` hands it
over). A next Trainer entry point (test after fit) reopens the run the previous one ended."""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from .. import distributed
from ..enclosing import enclosing_parent_iteration_id
from ..reporting import announce, warn_tracking
from ..tracker.enums import IterationStatus
from ..tracker.errors import Conflict, TransportError, Unprocessable
from ..tracker.lifecycle import Heartbeat
from . import resume
from .checkpoints import newest_checkpoint
from .metrics import buffer_points
from .params import write_parameters
from .system import start_sampling, stop_sampling

if TYPE_CHECKING:
    from ..tracker.records import Iteration
    from .state import LoggerState

THREAD_NAME = "diary-open-run"
OPEN_TIMEOUT = 300.0  # how long the end of a run waits for a run still being opened
log = logging.getLogger("diary_integrations")


def open_run(lg: LoggerState) -> None:
    """Create or resume the run's iteration (the driver when `per_rank`) and start its heartbeat."""
    tracker = lg.tracker
    experiment_id = lg._resolve_experiment()
    if lg._parent_iteration_id is None and lg._version is None:
        # Inside a tracked tuning trial (a Ray Tune trial with DiaryCallback): the run is the trial's child.
        lg._parent_iteration_id = enclosing_parent_iteration_id(tracker, experiment_id=experiment_id)
    found: Iteration | None = None
    why = ""
    key = None
    if lg._version is not None:
        found = resume.named(tracker, lg._version, experiment_id)
        why = f"resumed with version={lg._version}"
    elif lg._resume == "auto":
        key = resume.job_key(lg._run_key)
        if key is not None:
            found = resume.find_by_key(tracker, experiment_id, lg._parent_iteration_id, key)
            why = f"resumed by run key {key!r}"
    if found is None:
        parameters = {resume.RUN_KEY_PARAMETER: key} if key is not None else None
        lg._run_id = open_iteration(lg, lg._parent_iteration_id, parameters=parameters)
    else:
        lg._run_id = found.id
        continue_iteration(lg, found, why)
    lg._owns_run = True
    # Without save_dir the checkpoints go under the Trainer's root, which the logger learns only later.
    announce(tracker, f"run #{lg._run_id}" + (f" (checkpoints under {lg.log_dir})" if lg._save_dir else ""))


def open_iteration(
    lg: LoggerState,
    parent: int | None,
    *,
    snapshot: bool | None = None,
    name: str = "",
    parameters: dict[str, object] | None = None,
) -> int:
    iteration_id, _ = lg.tracker.create_iteration(
        lg._resolve_experiment(),
        parent_iteration_id=parent,
        notes=lg._notes,
        snapshot=snapshot,
        **({"name": name} if name else {}),
        **({"parameters": parameters} if parameters else {}),
    )
    Heartbeat.of(lg.tracker).add(iteration_id)
    lg._mark_unfinished()
    return iteration_id


def continue_iteration(lg: LoggerState, found: Iteration, why: str) -> None:
    """Reopen `found` for this process (recording the checkpoint it resumes from) and continue its
    metric series after the last stored step."""
    checkpoint = newest_checkpoint(lg._checkpoint_dir_for(found.id))
    lg._resumed_from = checkpoint
    where = f"from checkpoint {checkpoint}" if checkpoint else "no checkpoint found"
    # Read before the reopen: a server away fails the read and nothing is written; one that goes away
    # between the two leaves the reopen in the journal, with the run's later writes behind it.
    stored = resume.stored_last_steps(lg.tracker, found.id)
    resume.reopen(lg.tracker, found, f"{why}, {where}, pid {os.getpid()}")
    Heartbeat.of(lg.tracker).add(found.id)
    lg._mark_unfinished()
    for key, step in stored.items():
        lg._stored_last[(found.id, key)] = step
        lg._next_step[key] = max(lg._next_step.get(key, 0), step + 1)


def open_rank_child(lg: LoggerState, rank: int) -> int:
    """`per_rank`: this rank's child of the driver; a resumed driver's rank continues its own child."""
    tracker = lg.tracker
    if lg._experiment_id is None:
        lg._experiment_id = tracker.get_iteration(lg._run_id).experiment_id
    if lg._version is not None or lg._resume == "auto":
        child = resume.rank_child(tracker, lg._run_id, rank)  # type: ignore[arg-type]
        if child is not None:
            continue_iteration(lg, child, f"rank {rank} of resumed driver {lg._run_id}")
            return child.id
    child_id = open_iteration(lg, lg._run_id, snapshot=False, name=f"rank {rank}")
    tracker.log_parameters(child_id, distributed.rank_parameters(rank))
    return child_id


class Opener:
    """`open_run` on a daemon thread; `settle` waits for it and hands back its failure, if any."""

    def __init__(self, lg: LoggerState) -> None:
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(lg,), name=THREAD_NAME, daemon=True)
        self.thread.start()

    def _run(self, lg: LoggerState) -> None:
        try:
            open_run(lg)
            start_sampling(lg)  # from here, not the training thread: it waits for no log_metrics
        except BaseException as error:  # noqa: BLE001 - handed to the training thread by settle
            self.failure = error

    @property
    def done(self) -> bool:
        return not self.thread.is_alive()

    def settle(self, timeout: float | None = None) -> BaseException | None:
        self.thread.join(timeout)
        return self.failure


def start_in_background(lg: LoggerState) -> bool:
    """Open the run on a thread (single process only); True while it is being, or was, opened so."""
    if lg._opener is None and lg._background and not distributed.process_group_ready():
        lg._opener = Opener(lg)
    return lg._opener is not None


def settle(lg: LoggerState, *, raise_failure: bool, wait: bool = True) -> bool:
    """Once the background opening is over (waited for, unless `wait=False`): hand over what was logged
    meanwhile. False while it still runs. A failure to open is raised on the training thread
    (`raise_failure`), else left to a warning."""
    opener = lg._opener
    if opener is None or lg._targets:
        return True
    if not wait and not opener.done:
        return False
    failure = opener.settle(OPEN_TIMEOUT)
    if not opener.done:
        return False
    if failure is not None or lg._run_id is None:
        lg._opener = None
        lg._early.clear()
        stop_sampling(lg)
        if raise_failure and failure is not None:
            raise failure
        warn_tracking("the run could not be opened; what was logged is lost", failure, logger=log)
        return True
    lg._owns_run = True
    lg._targets = (lg._run_id,)
    if lg._early_params:
        params, lg._early_params = lg._early_params, {}
        write_parameters(lg, params)
    early, lg._early = lg._early, []
    for values, step, when in early:
        buffer_points(lg, lg._targets, values, step, when)
    return True


def reopen_ended(lg: LoggerState) -> None:
    """A second entry point (fit, then test) writes into the iterations the first one ended, reopened with
    a notes line. With the server away the reopen waits in the run's journal, behind the first end if
    that waits there too, and this entry point's writes and end queue behind it."""
    reason = f"another Trainer entry point of the same DiaryLogger continues the run, pid {os.getpid()}"
    for iteration_id in sorted(lg._ended_ok):
        try:
            lg.tracker.reopen_iteration(iteration_id, expected_status=IterationStatus.SUCCEEDED, reason=reason)
        except TransportError as error:
            if getattr(error, "journal", None) is None:
                raise
        except (Conflict, Unprocessable) as error:
            # Changed behind this process's back (reaped, or its journaled end refused): not ours now.
            warn_tracking(f"iteration {iteration_id} was not reopened: {error.message}", logger=log)
            continue
        Heartbeat.of(lg.tracker).add(iteration_id)
        lg._mark_unfinished()
    lg._ended_ok.clear()
    start_sampling(lg)


class LazyTracker:
    """`logger.experiment` before the tracker is connected: every attribute is the real tracker's, so
    Lightning's setup, which only touches `experiment`, does not connect (SQLAlchemy, migrations) on the
    training thread."""

    def __init__(self, lg: LoggerState) -> None:
        self._logger = lg

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger.tracker, name)
