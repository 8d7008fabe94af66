"""Which iterations each process writes, under DDP and friends.

Default mode: one iteration, written by rank 0; every rank learns its id (so a failing rank ends it with
its own error). `per_rank=True`: a driver iteration (created by the launching process, or by rank 0 and
broadcast) and a child iteration per rank; rank 0 also writes the driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import distributed
from ..tracker.lifecycle import Heartbeat
from .system import start_sampling

if TYPE_CHECKING:
    from .state import LoggerState


def init_driver(lg: LoggerState) -> None:
    """`per_rank`: the launching process (rank 0) opens the driver now and exports its id, so the rank
    processes Lightning starts from here inherit it; those processes adopt it instead."""
    if distributed.launch_rank() == 0:
        lg._open_run()
        distributed.export_driver(lg._run_id)  # type: ignore[arg-type]
    else:
        lg._run_id = distributed.driver_from_env()


def share_run(lg: LoggerState, rank: int) -> bool:
    """Once the process group exists (Lightning's setup touches `experiment` on every rank at once):
    rank 0 opens the run if it has none and broadcasts its id, every rank learns it. A collective: True
    when it ran here (so every rank reaches the same branch), False in a single process."""
    if not (distributed.process_group_ready() and distributed.world_size() > 1) or lg._synced:
        return False
    if rank == 0 and lg._run_id is None:
        lg._open_run()
    lg._run_id = distributed.broadcast_driver(lg._run_id if rank == 0 else None)
    lg._synced = True
    return True


def prepare_targets(lg: LoggerState) -> tuple[int, ...]:
    """The iterations this process writes, created, resumed or attached on first use; () on ranks that
    write nothing, and while the run is still being opened in the background."""
    if lg._targets and (lg._synced or not lg._per_rank or not distributed.process_group_ready()):
        return lg._targets
    rank = distributed.current_rank()
    shared = share_run(lg, rank)
    if not lg._per_rank:
        if rank != 0:
            return ()
        if lg._opener is not None:  # being opened in the background: its points wait until it exists
            return lg._targets if lg._settle_opening(raise_failure=True, wait=False) else ()
        if lg._run_id is None:
            if not shared and lg._open_in_background():
                start_sampling(lg)  # reads from now on; its readings wait with the points
                return ()  # training starts now; points wait in memory until the run exists
            lg._open_run()
        elif not lg._owns_run:
            # A ddp_spawn worker handed the run by its launcher, which stopped beating for it when it
            # pickled the logger: the run's heartbeat comes from here now.
            Heartbeat.of(lg.tracker).add(lg._run_id)
        lg._owns_run = True
        lg._targets = (lg._run_id,)  # type: ignore[assignment]
        start_sampling(lg)
        return lg._targets
    if shared:
        lg._owns_run = rank == 0
        if lg._owns_run:
            Heartbeat.of(lg.tracker).add(lg._run_id)  # type: ignore[arg-type]
    elif rank != 0:
        return ()  # a rank > 0 learns the driver from rank 0's broadcast once the process group exists
    elif lg._run_id is None:
        lg._open_run()
    if lg._rank_id is None:
        lg._rank_id = lg._open_rank_child(rank)
    # Rank 0 also writes the driver: its metrics are the run's (synced ones are the same everywhere).
    lg._targets = (lg._rank_id, lg._run_id) if lg._owns_run else (lg._rank_id,)  # type: ignore[assignment]
    start_sampling(lg)
    return lg._targets
