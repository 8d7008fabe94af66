"""Rank-aware helpers: one driver iteration per distributed run and one child iteration per rank.

Shared by the Lightning logger (DDP, ddp_spawn, torchrun) and plain torch.distributed code:

    with driver_iteration(tracker, experiment_id) as driver:        # in the launching process
        mp.spawn(worker, nprocs=2)                                   # ranks inherit the driver id

    def worker(rank):                                                # in every rank
        dist.init_process_group("gloo", rank=rank, world_size=2)
        with rank_iteration(tracker, experiment_id) as it:
            tracker.log_metrics(it.id, {"loss": 0.1}, step=0)

Ranks learn the driver id from `$DIARY_DRIVER_ITERATION_ID` (set before launch) or, under torchrun,
from a broadcast by rank 0. A failing rank ends its own child FAILED with its exception and the driver
FAILED with that error; a secondary "connection closed" on another rank never replaces it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .tracker.enums import IterationStatus
from .tracker.errors import Unprocessable
from .tracker.lifecycle import IterationRun, _SigtermAsExit, describe_failure
from .tracker.records import Iteration

DRIVER_ENV = "DIARY_DRIVER_ITERATION_ID"
RANK_PARAMETER = "rank"

# Text seen when a rank fails only because a peer went away: not the run's real error.
_COLLECTIVE_MARKERS = (
    "connection closed by peer",
    "connection reset by peer",
    "broken pipe",
    "[gloo]",
    "nccl",
    "processgroup",
    "dist_backend",
    "distbackenderror",
    "distnetworkerror",
)
_COLLECTIVE_TYPES = {"DistError", "DistBackendError", "DistNetworkError", "DistStoreError"}


def _dist() -> Any:
    """torch.distributed if torch is already loaded (never imported here just to ask)."""
    if "torch" not in sys.modules:
        return None
    try:
        import torch.distributed as dist
    except ImportError:
        return None
    return dist if dist.is_available() else None


def process_group_ready() -> bool:
    """True when a torch.distributed process group is initialised in this process."""
    dist = _dist()
    return bool(dist is not None and dist.is_initialized())


def launch_rank() -> int:
    """This process's global rank as the launcher's environment tells it, before any process group.
    A process on another node counts as non-zero even when only its local rank is known."""
    for name in ("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK"):
        value = os.environ.get(name)
        if value is not None and value.strip().isdigit():
            return int(value)
    local = os.environ.get("LOCAL_RANK", "0")
    node = os.environ.get("NODE_RANK") or os.environ.get("GROUP_RANK") or "0"
    local_rank = int(local) if local.strip().isdigit() else 0
    node_rank = int(node) if node.strip().isdigit() else 0
    return local_rank if node_rank == 0 else max(1, node_rank * 1_000 + local_rank)


def current_rank() -> int:
    """The global rank: from the process group when there is one, else from the environment."""
    return _dist().get_rank() if process_group_ready() else launch_rank()


def _env_int(*names: str) -> int | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return None


def node_rank() -> int:
    """This process's node (machine) in a multi-node run: torchrun's GROUP_RANK, Lightning's NODE_RANK,
    SLURM's SLURM_NODEID; 0 on a single node."""
    found = _env_int("GROUP_RANK", "NODE_RANK", "SLURM_NODEID")
    return 0 if found is None else found


def local_rank() -> int:
    """This process's rank among the processes of its node: LOCAL_RANK (torchrun, Lightning's ddp),
    SLURM_LOCALID; else the global rank on node 0 (mp.spawn and ddp_spawn workers of one machine)."""
    found = _env_int("LOCAL_RANK", "SLURM_LOCALID")
    if found is not None:
        return found
    return current_rank() if node_rank() == 0 else 0


def rank_parameters(rank: int) -> dict[str, int]:
    """The parameters a rank's child iteration records: where in the run and on which node it ran."""
    return {RANK_PARAMETER: rank, "world_size": world_size(), "node_rank": node_rank(), "local_rank": local_rank()}


def world_size() -> int:
    if process_group_ready():
        return _dist().get_world_size()
    value = os.environ.get("WORLD_SIZE", "1")
    return int(value) if value.strip().isdigit() else 1


def driver_from_env() -> int | None:
    """The driver id a launcher exported in `$DIARY_DRIVER_ITERATION_ID`, if any."""
    value = os.environ.get(DRIVER_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) <= 0:
        raise Unprocessable(f"{DRIVER_ENV} must be a positive iteration id, got {value!r}", field=DRIVER_ENV)
    return int(value)


def export_driver(driver_id: int) -> None:
    """Make processes launched from here on (Lightning DDP, mp.spawn, subprocess) inherit the driver."""
    os.environ[DRIVER_ENV] = str(driver_id)


def broadcast_driver(driver_id: int | None) -> int:
    """Rank 0's driver id, on every rank (a collective: every rank must call it)."""
    box = [driver_id]
    _dist().broadcast_object_list(box, src=0)
    if box[0] is None:
        raise Unprocessable("rank 0 has no driver iteration to share", field="driver_iteration_id")
    return int(box[0])


def is_collective_error(error: BaseException | str) -> bool:
    """Whether a failure is a secondary one: a collective broke because a peer went away."""
    if isinstance(error, BaseException):
        if type(error).__name__ in _COLLECTIVE_TYPES:
            return True
        error = f"{type(error).__name__}: {error}"
    text = error.lower()
    return any(marker in text for marker in _COLLECTIVE_MARKERS)


def describe_rank_failure(exc: BaseException) -> tuple[IterationStatus, str, str, int | None]:
    """(status, error_message, traceback, failed rank or None). A worker's exception relayed by
    torch.multiprocessing (ddp_spawn, mp.spawn) yields the worker's own last line and its rank."""
    status, message, trace = describe_failure(exc)
    index = getattr(exc, "error_index", None)
    if type(exc).__name__ == "ProcessRaisedException" and isinstance(index, int):
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        original = lines[-1] if lines else message
        status = IterationStatus.KILLED if original.startswith(("KeyboardInterrupt", "SystemExit")) else status
        return status, original[:2000], trace, index
    return status, message, trace, None


def end_quietly(
    tracker: Any, iteration_id: int, status: IterationStatus, message: str = "", trace: str = ""
) -> bool:
    """End a RUNNING iteration; False (and nothing written) when it had already ended: first status wins."""
    try:
        tracker.end_iteration(iteration_id, status, error_message=message, traceback=trace)
        return True
    except Unprocessable:
        current = tracker.get_iteration(iteration_id)
        if current is not None and current.ended:
            return False
        raise


def child_ranks(tracker: Any, driver_id: int) -> list[tuple[int | None, Iteration]]:
    """The driver's children with the rank each one recorded (None if it has none)."""
    out = []
    for child in tracker.get_child_iterations(driver_id):
        params = {p.key: p.value for p in tracker.get_parameters(child.id)}
        rank = params.get(RANK_PARAMETER)
        out.append((int(rank) if rank is not None and rank.isdigit() else None, child))
    return out


def first_failure(children: list[tuple[int | None, Iteration]]) -> tuple[int | None, Iteration] | None:
    """The child that failed first with a real error; a secondary collective error only if none did."""
    failed = [(r, c) for r, c in children if c.status is IterationStatus.FAILED]
    failed.sort(key=lambda rc: (rc[1].end_date or rc[1].created_date, rc[1].id))
    real = [rc for rc in failed if not is_collective_error(rc[1].error_message)]
    return (real or failed or [None])[0]


def _rank_label(rank: int | None, message: str) -> str:
    return message if rank is None else f"rank {rank}: {message}"[:2000]


def settle_children(
    tracker: Any, driver_id: int, *, wait: float, reason: str, poll: float = 0.2
) -> list[tuple[int | None, Iteration]]:
    """Give RUNNING children up to `wait` seconds to end themselves, then mark the rest KILLED."""
    deadline = time.monotonic() + wait
    while True:
        children = child_ranks(tracker, driver_id)
        running = [(r, c) for r, c in children if c.status is IterationStatus.RUNNING]
        if not running or time.monotonic() >= deadline:
            break
        time.sleep(poll)
    for rank, child in running:
        end_quietly(tracker, child.id, IterationStatus.KILLED, _rank_label(rank, reason))
    return child_ranks(tracker, driver_id) if running else children


def conclude_rank(
    tracker: Any,
    driver_id: int,
    *,
    rank: int,
    exc: BaseException | None,
    owns_driver: bool,
    settle_timeout: float = 30.0,
    grace: float = 5.0,
    hand_over: float = 0.0,
) -> None:
    """Record one rank's outcome on the driver, after the rank has ended its own child.

    Success: the driver's owner (rank 0) waits for its siblings, marks stragglers KILLED and ends the
    driver. A real error ends the driver FAILED with it at once (the first error wins), from a rank
    other than the owner after `hand_over` seconds (see conclude_shared: the owner may still be
    writing metrics to the driver). A secondary collective error never does, unless the owner finds
    no real error within `grace` seconds.
    """
    if exc is None:
        if not owns_driver:
            return
        children = settle_children(
            tracker, driver_id, wait=settle_timeout,
            reason=f"did not finish within {settle_timeout:g}s of rank {rank}; process presumed dead",
        )
        _end_driver_by_children(tracker, driver_id, children)
        return
    status, message, trace, failed_rank = describe_rank_failure(exc)
    if failed_rank is not None:
        # Relayed from a worker by torch.multiprocessing: every worker has already exited.
        conclude_launcher(tracker, driver_id, exc)
        return
    if status is IterationStatus.KILLED:
        end_quietly(tracker, driver_id, status, _rank_label(rank, message), trace)
        if owns_driver:
            settle_children(tracker, driver_id, wait=0, reason=f"stopped with rank {rank} ({message})")
        return
    if not is_collective_error(exc):
        if owns_driver or not _ended_within(tracker, driver_id, hand_over):
            end_quietly(tracker, driver_id, IterationStatus.FAILED, _rank_label(rank, message), trace)
        return
    if not owns_driver:
        return  # the rank that really failed reports it
    deadline = time.monotonic() + grace
    while True:
        driver = tracker.get_iteration(driver_id)
        if driver is None or driver.ended:
            return
        failure = first_failure(child_ranks(tracker, driver_id))
        if failure is not None and not is_collective_error(failure[1].error_message):
            frank, child = failure
            end_quietly(tracker, driver_id, IterationStatus.FAILED,
                        _rank_label(frank, child.error_message), child.traceback)
            return
        if time.monotonic() >= deadline:
            end_quietly(tracker, driver_id, IterationStatus.FAILED, _rank_label(rank, message), trace)
            return
        time.sleep(0.2)


def conclude_shared(
    tracker: Any,
    run_id: int,
    *,
    rank: int,
    world: int,
    exc: BaseException | None,
    owns_run: bool,
    grace: float = 5.0,
    hand_over: float = 3.0,
) -> bool:
    """Record one rank's outcome on the one iteration all ranks share (DiaryLogger without `per_rank`).
    True when this call ended it SUCCEEDED.

    Success: only its owner (rank 0) ends it. A real error, or Ctrl-C/SIGTERM, ends it from any rank
    as "rank N: <error>" (the first end wins; rank 0 at once, a rank > 0 after the hand-over below;
    a single process keeps the plain error text). A secondary collective error never does from a
    rank > 0; the owner waits up to `grace` seconds for the failing rank's own, else records its own.
    A worker's exception relayed by torch.multiprocessing (ddp_spawn's launcher) is recorded as the
    worker's, unless a worker already ended the run itself.

    A rank > 0 ends the run only after `hand_over` seconds (unless it ended meanwhile): rank 0 holds
    the run's metrics, and while its main thread waits in the collective this rank broke, its
    background writer stores what it buffered; an ended run would refuse it.
    """
    if exc is None:
        return owns_run and end_quietly(tracker, run_id, IterationStatus.SUCCEEDED)
    status, message, trace, failed_rank = describe_rank_failure(exc)
    if failed_rank is not None:
        label = _rank_label(failed_rank, message)
    else:
        label = message if world <= 1 else _rank_label(rank, message)
        secondary = status is IterationStatus.FAILED and is_collective_error(exc)
        if secondary and (not owns_run or _ended_within(tracker, run_id, grace)):
            return False  # the rank that really failed reports it
        if not owns_run and _ended_within(tracker, run_id, hand_over):
            return False
    end_quietly(tracker, run_id, status, label, trace)
    return False


def _ended_within(tracker: Any, iteration_id: int, wait: float, poll: float = 0.25) -> bool:
    """Whether the iteration is (or becomes, within `wait` seconds) ended."""
    deadline = time.monotonic() + wait
    while True:
        current = tracker.get_iteration(iteration_id)
        if current is None or current.ended:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)


def _end_driver_by_children(tracker: Any, driver_id: int, children: Any) -> None:
    """Once every rank has ended: SUCCEEDED, or FAILED with the first failed rank's own error."""
    failure = first_failure(children)
    if failure is None:
        end_quietly(tracker, driver_id, IterationStatus.SUCCEEDED)
    else:
        rank, child = failure
        end_quietly(tracker, driver_id, IterationStatus.FAILED, _rank_label(rank, child.error_message), child.traceback)


def conclude_launcher(tracker: Any, driver_id: int, exc: BaseException | None) -> None:
    """End a driver from the launching process once every rank process has exited (mp.spawn,
    Lightning's ddp_spawn): children still RUNNING never finalised, so they are marked now."""
    if exc is None:
        children = settle_children(tracker, driver_id, wait=0, reason="exited without finalising its iteration")
        _end_driver_by_children(tracker, driver_id, children)
        return
    status, message, trace, failed_rank = describe_rank_failure(exc)
    for rank, child in child_ranks(tracker, driver_id):
        if child.status is not IterationStatus.RUNNING:
            continue
        if failed_rank is not None and rank == failed_rank:
            end_quietly(tracker, child.id, status, message, trace)
        else:
            end_quietly(tracker, child.id, IterationStatus.KILLED,
                        _rank_label(rank, f"stopped when {_rank_label(failed_rank, message)}"))
    children = child_ranks(tracker, driver_id)
    failure = first_failure(children)
    if failure is not None and not is_collective_error(failure[1].error_message):
        frank, child = failure
        end_quietly(tracker, driver_id, IterationStatus.FAILED,
                    _rank_label(frank, child.error_message), child.traceback)
    else:
        end_quietly(tracker, driver_id, status, _rank_label(failed_rank, message), trace)


def _tracker(tracker: Any) -> Any:
    if tracker is None or isinstance(tracker, (str, os.PathLike)):
        from .connection import connect

        return connect(tracker)
    return tracker


@contextmanager
def driver_iteration(
    tracker: Any, experiment_id: int, *, parent_iteration_id: int | None = None, notes: str = ""
) -> Iterator[Iteration]:
    """In the launching process: create the driver, export its id to the ranks about to be launched,
    and when the block exits (every rank done) mark ranks that never finalised and end the driver."""
    tracker = _tracker(tracker)
    driver_id, _ = tracker.create_iteration(experiment_id, parent_iteration_id=parent_iteration_id, notes=notes)
    previous = os.environ.get(DRIVER_ENV)
    export_driver(driver_id)
    try:
        yield tracker.get_iteration(driver_id)
    except BaseException as exc:
        conclude_launcher(tracker, driver_id, exc)
        raise
    else:
        conclude_launcher(tracker, driver_id, None)
    finally:
        if previous is None:
            os.environ.pop(DRIVER_ENV, None)
        else:
            os.environ[DRIVER_ENV] = previous


@contextmanager
def rank_iteration(
    tracker: Any,
    experiment_id: int,
    *,
    driver_iteration_id: int | None = None,
    parent_iteration_id: int | None = None,
    notes: str = "",
    settle_timeout: float = 30.0,
) -> Iterator[Iteration]:
    """This rank's child iteration of the run's driver, finalised like `with_iteration`.

    The driver is `driver_iteration_id`, else `$DIARY_DRIVER_ITERATION_ID`, else one rank 0 creates
    (under `parent_iteration_id`) and broadcasts; the rank that creates it also ends it. `tracker` is
    a tracker, a URI, or None for `connect()`'s default. Call it after `init_process_group`.
    """
    tracker = _tracker(tracker)
    rank, size = current_rank(), world_size()
    driver_id = driver_iteration_id if driver_iteration_id is not None else driver_from_env()
    owns_driver = False
    if driver_id is None:
        if rank == 0:
            driver_id, _ = tracker.create_iteration(
                experiment_id, parent_iteration_id=parent_iteration_id, notes=notes
            )
            owns_driver = True
        if process_group_ready() and size > 1:
            driver_id = broadcast_driver(driver_id)
    if driver_id is None:
        raise Unprocessable(
            f"driver_iteration_id: rank {rank} has no driver (no {DRIVER_ENV} and no process group to "
            "receive rank 0's); call rank_iteration after init_process_group",
            field="driver_iteration_id",
        )
    run = IterationRun(tracker, experiment_id, parent_iteration_id=driver_id, notes=notes, snapshot=False,
                       name=f"rank {rank}")
    # A launcher SIGTERMs the surviving ranks as soon as one dies (torchrun 0.1 s later): the signal
    # waits until this rank has written its child's end and its part of the driver's.
    _SigtermAsExit.enter()
    try:
        try:
            with run as iteration:
                tracker.log_parameters(iteration.id, rank_parameters(rank))
                yield iteration
        except BaseException as exc:
            with _SigtermAsExit.held():
                conclude_rank(tracker, driver_id, rank=rank, exc=exc, owns_driver=owns_driver,
                              settle_timeout=settle_timeout)
            raise
        with _SigtermAsExit.held():
            conclude_rank(tracker, driver_id, rank=rank, exc=None, owns_driver=owns_driver,
                          settle_timeout=settle_timeout)
    finally:
        _SigtermAsExit.exit()
