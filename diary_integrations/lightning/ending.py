"""The end of a run: `finalize` and interpreter exit end the iterations with the truth (SUCCEEDED, FAILED
with the exception, KILLED for Ctrl-C / SIGTERM), after the buffered metrics are written, and one
TrackingWarning says what could not be recorded."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from .. import distributed, exit_hooks, losses
from ..sidecar import SidecarTracker
from ..tracker.enums import IterationStatus
from ..tracker.lifecycle import Heartbeat
from . import checkpoints
from .system import stop_sampling

if TYPE_CHECKING:
    from .state import LoggerState

log = logging.getLogger("diary_integrations")

SUCCESS = {"success", "finished"}
CLOSE_TIMEOUT = 120.0  # how long the end of a run waits for buffered metrics to be written


class Reported(Exception):
    """Stands for a failure Lightning reported without an exception in flight."""

    def __init__(self, status: str) -> None:
        super().__init__(f"Lightning finalised the run with status {status!r}")
        self.status = status


def conclude(lg: LoggerState, exc: BaseException | None) -> None:
    """End this process's iterations (finalize, or interpreter exit) and stop its threads."""
    pending = 0
    # A run still being opened in the background is waited for; what was logged meanwhile goes first.
    lg._settle_opening(raise_failure=False)
    # The sampler's last reading is written (its writer flushed) before the end: no point after it.
    stop_sampling(lg)
    # Closing (not just flushing) stops the writer thread until the next entry point logs again. Over
    # HTTP it waits at most $DIARY_FLUSH_TIMEOUT and journals the rest, before the end is sent.
    if lg._writer is not None:
        wait = lg._writer.default_timeout()
        if not lg._writer.close(timeout=CLOSE_TIMEOUT if wait is None else wait):
            pending = lg._writer.backlog()
    lg._writing = False
    failure: Exception | None = None
    if lg._run_id is not None:  # else this process never logged anything (e.g. a failure before setup)
        try:
            if lg._ended_ok:
                lg._reopen()  # the previous entry point ended them; this one decides now
            if lg._log_model and lg._owns_run and lg._checkpoint_callback is not None:
                checkpoints.store_at_end(lg, exc)
            if lg._per_rank:
                finalize_rank(lg, exc)
            else:
                finalize_shared(lg, exc)
        except Exception as error:  # noqa: BLE001 - tracking must never break (or replace) the run's end
            failure = error
            if exc is None and not lg._per_rank and getattr(error, "journal", None) is not None:
                # The SUCCEEDED end waits in the journal and will be applied: a next entry point reopens
                # the run behind it there, as if it had been delivered.
                lg._ended_ok.add(lg._run_id)
    # Whether or not it could be written, this call decided the status: exit must not end it again
    # (cleared only now, since reopening above marks the run unfinished).
    lg._unfinished_pid = None
    exit_hooks.release(lg)
    if lg._tracker is not None:
        # The heartbeat thread ends with the last iteration it beats for: not left running past here.
        Heartbeat.of(lg._tracker).join_idle()
        if lg._own_tracker and isinstance(lg._tracker, SidecarTracker):
            lg._tracker.close()  # every call was answered, so applied; a next entry point starts another
    report_losses(lg, failure, pending)


def superseded(lg: LoggerState, iteration_id: int) -> bool:
    """True when this process learned (a heartbeat refused with IterationEnded) that the iteration was
    ended behind its back, by a reaper or a requeued copy of the job that may have reopened it since:
    this process then never ends it, so a stale process cannot overwrite a newer run's status."""
    return iteration_id in Heartbeat.of(lg.tracker).warned


def report_losses(lg: LoggerState, failure: Exception | None, pending: int) -> None:
    """One TrackingWarning for what this run's end could not record (losses.py)."""
    dropped = lg.dropped - lg._reported_dropped
    lg._reported_dropped = lg.dropped
    losses.report(lg._run_id, lg._writer, failure, pending, dropped=dropped,
                  journaled_params=lg._journaled_params, waited=CLOSE_TIMEOUT, stacklevel=5)


def end(lg: LoggerState, iteration_id: int, exc: BaseException | None) -> None:
    if superseded(lg, iteration_id):
        return
    if exc is None:
        status, message, trace = IterationStatus.SUCCEEDED, "", ""
    else:
        status, message, trace, _ = distributed.describe_rank_failure(exc)
    Heartbeat.of(lg.tracker).discard(iteration_id)
    if distributed.end_quietly(lg.tracker, iteration_id, status, message, trace) and exc is None:
        lg._ended_ok.add(iteration_id)


def finalize_shared(lg: LoggerState, exc: BaseException | None) -> None:
    """Without `per_rank`: rank 0 owns the one iteration; a rank that really failed ends it with its
    own error (the first end wins), never with a peer's "connection closed"."""
    assert lg._run_id is not None
    if (exc is None and not lg._owns_run) or superseded(lg, lg._run_id):
        return
    if lg._owns_run:
        Heartbeat.of(lg.tracker).discard(lg._run_id)
    if distributed.conclude_shared(
        lg.tracker,
        lg._run_id,
        rank=distributed.current_rank(),
        world=distributed.world_size(),
        exc=exc,
        owns_run=lg._owns_run,
        hand_over=hand_over(lg),
    ):
        lg._ended_ok.add(lg._run_id)


def hand_over(lg: LoggerState) -> float:
    """How long a failing rank > 0 lets rank 0's writer store the run's buffered metrics (it writes
    what it holds every `flush_interval`) before ending the run it shares with rank 0."""
    return 2 * lg._flush_interval + 1.0


def finalize_rank(lg: LoggerState, exc: BaseException | None) -> None:
    assert lg._run_id is not None
    if lg._rank_id is not None:
        end(lg, lg._rank_id, exc)
    if lg._owns_run:
        Heartbeat.of(lg.tracker).discard(lg._run_id)
    if superseded(lg, lg._run_id):
        return
    # Without a child of its own this is ddp_spawn's launching process, whose workers are gone;
    # conclude_rank hands a relayed worker exception to conclude_launcher.
    distributed.conclude_rank(
        lg.tracker,
        lg._run_id,
        rank=distributed.current_rank(),
        exc=exc,
        owns_driver=lg._owns_run,
        settle_timeout=lg._settle_timeout,
        hand_over=hand_over(lg),
    )
    if exc is None and lg._owns_run:
        driver = lg.tracker.get_iteration(lg._run_id)
        if driver is not None and driver.status is IterationStatus.SUCCEEDED:
            lg._ended_ok.add(lg._run_id)


def end_at_exit(lg: LoggerState, exc: BaseException | None) -> None:
    """Interpreter exit (exit_hooks.py): a run no finalize ended (logging without a Trainer, or an error
    before `fit`) ends FAILED with the uncaught exception the process is dying of, else SUCCEEDED; left
    RUNNING it would later be reaped as KILLED "heartbeat lost", which is false. Only the process that
    opened the iterations ends them (never a forked copy), by `finalize`'s rules."""
    if lg._unfinished_pid == os.getpid():
        conclude(lg, exc)


def pickled_for_a_new_process() -> bool:
    """True while multiprocessing pickles a process's arguments to start it (ddp_spawn, mp.spawn)."""
    from multiprocessing import context

    return context.get_spawning_popen() is not None
