"""What of a DiaryLogger belongs to one process: set up when it is built, rebuilt after pickling (a
ddp_spawn worker, a deep copy), and left out of the pickle."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .. import distributed
from ..tracker.lifecycle import Heartbeat
from . import ending

if TYPE_CHECKING:
    from .state import LoggerState

# A pickled copy does not take these: it rebuilds them for its own process.
PROCESS_ONLY = frozenset({
    "_writer", "_targets", "_ended_ok", "_checkpoint_callback", "_stored_checkpoints", "_unfinished_pid",
    "_opener", "_early", "_early_params", "_stored_last", "_connecting", "_sampler", "_sampling",
})


def reset(lg: LoggerState) -> None:
    """The logger's state for this process, empty."""
    lg._writer = None
    lg._writing = False  # the writer's thread was started in this entry point
    lg._targets = ()
    lg._ended_ok = set()
    lg._known_keys = set()
    lg._next_step = {}
    lg._stored_last = {}  # a resumed run's stored steps, not written again
    lg._checkpoint_callback = None
    lg._stored_checkpoints = {}
    lg._reported_dropped = 0  # metric points already reported as lost
    lg._unfinished_pid = None  # set while this process has iterations no finalize ended
    lg._opener = None
    lg._early = []  # (metrics, step, time) logged while the run was opening
    lg._early_params = {}
    lg._journaled_params = 0  # hyperparameters kept in the local journal (the server was away)
    lg._resumed_from = None
    lg._flush_next_log = False  # a checkpoint was just saved: its step's metrics are written at once
    lg._connecting = threading.Lock()
    lg._sampling = threading.Lock()
    lg._sampler = None  # the system metrics sampler of this process's run (system.py)


def picklable(lg: LoggerState) -> dict[str, Any]:
    """The state a copy in another process starts from."""
    lg._settle_opening(raise_failure=False)
    if (lg._run_id is None and not lg._per_rank
            and ending.pickled_for_a_new_process() and distributed.launch_rank() == 0):
        # ddp_spawn: its workers get no finalize when they fail, only this launching process does;
        # it opens the run now, so it knows the iteration to end (with the failed worker's error).
        try:
            lg._open_run()
        except Exception as error:  # noqa: BLE001 - never stop the workers from starting
            ending.log.warning("diary: the launching process could not create the run: %s", error)
    if lg._run_id is not None and lg._tracker is not None and ending.pickled_for_a_new_process():
        # The process it is pickled for takes the run over and beats for it (ranks.prepare_targets); this
        # launcher gets no call once its workers are done, so its own beat would outlive the run.
        beat = Heartbeat.of(lg._tracker)
        beat.discard(lg._run_id)
        beat.join_idle()
    state = {k: v for k, v in lg.__dict__.items() if k not in PROCESS_ONLY}
    state.update(_rank_id=None, _synced=False, _owns_run=False)
    return state
