"""The ranks of a multi-process Trainer (torchrun, accelerate launch).

Default mode (one run, written by rank 0): rank 0 opens the run at `train()`'s start and broadcasts its
id (`share_run`), so a rank > 0 that raises ends it with its own error (`conclude_peer`), and rank 0's
own failure ends it as `distributed.conclude_shared` says (`shared_end`), as DiaryLogger's ranks do: the
first real error, "rank N: <error>", never a peer's secondary "connection closed". A rank > 0 writes
nothing else, and connects to the tracker only when it fails.

`per_rank=True`: a driver iteration opened by rank 0 and broadcast to every rank, and a child iteration
per rank (named "rank N", with the rank's place in the run as parameters) that the rank writes itself.
Each rank ends its own child with its own outcome, then `distributed.conclude_rank` records it on the
driver: rank 0 waits for its siblings and ends the driver by its children; a rank's real error ends the
driver FAILED with "rank N: <error>"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import distributed
from ..callback_run import CallbackRun
from ..sidecar import SidecarTracker
from ..tracker.errors import Unprocessable

SETTLE_TIMEOUT = 30.0  # how long rank 0 waits for its siblings' children to end before marking them KILLED
HAND_OVER = 3.0  # how long a failing rank > 0 lets rank 0 end the driver first


def applies() -> bool:
    """True when this process is one rank of several, with the process group up (a collective works)."""
    return distributed.process_group_ready() and distributed.world_size() > 1


def share_run(open_run: Callable[[], int] | None) -> int:
    """The default mode's run id on every rank (a collective: every rank calls it at once). Rank 0 passes
    `open_run`, which opens the run and gives its id; the others pass None. A run that could not be
    opened raises on every rank (rank 0: the reason), after the broadcast, so no rank is left waiting."""
    run_id, failure = None, None
    if open_run is not None:
        try:
            run_id = open_run()
        except Exception as error:  # noqa: BLE001 - raised after the collective
            failure = error
    try:
        return distributed.broadcast_driver(run_id)
    except Unprocessable:
        if failure is not None:
            raise failure from None
        raise


def shared_end(world: int) -> Callable[[Any, int, BaseException], Any]:
    """How rank 0 ends the shared run when its `train()` raised (CallbackRun.end_raised)."""

    def end(tracker: Any, run_id: int, exc: BaseException) -> Any:
        return distributed.conclude_shared(tracker, run_id, rank=0, world=world, exc=exc, owns_run=True,
                                           hand_over=HAND_OVER)

    return end


def conclude_peer(connect: Callable[[], Any], run_id: int, exc: BaseException, *, own_tracker: bool) -> None:
    """A rank > 0's `train()` raised: the shared run ends FAILED with its own error ("rank N: ..."),
    after rank 0's writer has had `HAND_OVER` seconds to store what it holds; a secondary collective
    error (a peer went away) is left to the rank that really failed."""
    tracker = connect()
    try:
        distributed.conclude_shared(tracker, run_id, rank=distributed.current_rank(), world=distributed.world_size(),
                                    exc=exc, owns_run=False, hand_over=HAND_OVER)
    finally:
        if own_tracker and isinstance(tracker, SidecarTracker):
            tracker.close()  # every call was answered, so applied


class RankRuns:
    """This rank's child run, and on rank 0 the driver run, of one `train()`."""

    def __init__(self, make_run: Callable[..., CallbackRun], connect: Callable[[], Any], *, own_tracker: bool) -> None:
        self.make_run, self.connect, self.own_tracker = make_run, connect, own_tracker
        self.rank = distributed.current_rank()
        self.tracker: Any = None
        self.driver: CallbackRun | None = None
        self.child: CallbackRun | None = None
        self.driver_id: int | None = None

    def open(self) -> None:
        """Every rank calls this at once (a collective): rank 0 opens the driver, every rank its child."""
        # One tracker for both runs of this process, closed only after the driver has heard of this rank.
        self.tracker = self.connect()
        driver_id = None
        if self.rank == 0:
            self.driver = self.make_run(tracker=self.tracker)
            driver_id = self.driver.open()
        self.driver_id = distributed.broadcast_driver(driver_id)
        self.child = self.make_run(tracker=self.tracker, parent_iteration_id=self.driver_id, name=f"rank {self.rank}")
        self.child.start()
        self.child.log_params(distributed.rank_parameters(self.rank))

    def log_params(self, params: dict[str, Any]) -> None:
        if self.driver is not None:
            self.driver.log_params(params)
        if self.child is not None:
            self.child.log_params(params)

    def end(self, exc: BaseException | None) -> None:
        """The child ends with this rank's outcome; then the driver learns it (rank 0 ends it)."""
        try:
            if self.child is not None:
                self.child.end(exc)
            if self.driver_id is not None:
                distributed.conclude_rank(
                    self.tracker, self.driver_id, rank=self.rank, exc=exc, owns_driver=self.driver is not None,
                    settle_timeout=SETTLE_TIMEOUT, hand_over=HAND_OVER,
                )
        finally:
            if self.driver is not None:
                # Ended above: this only releases the driver's exit hook and heartbeat (the first end wins).
                self.driver.end(exc)
            if self.own_tracker and isinstance(self.tracker, SidecarTracker):
                self.tracker.close()  # every call was answered, so applied

    # What DiaryCallback asks of a run, as a CallbackRun answers it.

    @property
    def iteration_id(self) -> int | None:
        """The driver: the run as a whole."""
        return self.driver_id

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if self.child is not None:
            self.child.log_metrics(metrics, step=step)

    def store_model(self, data: bytes, *, file_name: str) -> None:
        if self.driver is not None:  # the model is the run's, kept once
            self.driver.store_model(data, file_name=file_name)

    def end_with(self, status: Any, message: str) -> None:
        """A status of the integration's choosing for this rank's child; the driver is then ended by its
        children on rank 0 as after a clean end."""
        if self.child is not None:
            self.child.end_with(status, message)
        self.end(None)
