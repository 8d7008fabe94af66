"""Resume: a run continues an iteration instead of starting a new one.

`version=ITERATION_ID` names it. `resume="auto"` finds it by the run's key: the scheduler's job identity
(`SLURM_JOB_ID` with `SLURM_ARRAY_TASK_ID`, or `TORCHELASTIC_RUN_ID`) or an explicit `run_key=`, stored
as the iteration's `run_key` parameter, so a requeued job finds its own KILLED (or orphaned RUNNING)
iteration. The iteration is reopened (a notes line says when, from what and why), its metric series
continue after their last stored step, and steps already stored are not written again.
"""

from __future__ import annotations

import os
from typing import Any

from ..tracker.enums import IterationStatus
from ..tracker.errors import Conflict, TransportError, Unprocessable
from ..tracker.records import Iteration

RUN_KEY_PARAMETER = "run_key"
RESUMABLE = (IterationStatus.KILLED, IterationStatus.RUNNING)


def job_key(run_key: str | None) -> str | None:
    """The key a requeued copy of this job computes again: explicit, else the scheduler's job identity."""
    if run_key is not None:
        return run_key
    job = os.environ.get("SLURM_JOB_ID", "").strip()
    if job:
        task = os.environ.get("SLURM_ARRAY_TASK_ID", "").strip()
        return f"slurm:{job}" + (f"_{task}" if task else "")
    elastic = os.environ.get("TORCHELASTIC_RUN_ID", "").strip()
    if elastic and elastic.lower() != "none":  # torchrun's default rendezvous id names no job
        return f"torchelastic:{elastic}"
    return None


def check_version(version: Any) -> int | None:
    """`version=` as an iteration id (an int, or its text as Lightning passes versions around)."""
    if version is None:
        return None
    if isinstance(version, str) and version.strip().isdigit():
        version = int(version)
    if isinstance(version, int) and not isinstance(version, bool) and version > 0:
        return version
    raise Unprocessable(f"version must be an iteration id (a positive integer), got {version!r}", field="version")


def find_by_key(tracker: Any, experiment_id: int, parent_id: int | None, key: str) -> Iteration | None:
    """The newest KILLED or RUNNING iteration of the experiment (under `parent_id`) with this run key."""
    candidates = [
        it
        for status in RESUMABLE
        for it in tracker.get_iterations(experiment_id, status=status)
        if it.parent_iteration_id == parent_id
    ]
    if not candidates:
        return None
    keys = tracker.get_parameter_values([it.id for it in candidates])
    mine = [it for it in candidates if keys.get(it.id, {}).get(RUN_KEY_PARAMETER) == key]
    return max(mine, key=lambda it: it.id) if mine else None


def named(tracker: Any, iteration_id: int, experiment_id: int) -> Iteration:
    """The iteration `version=` names, which must exist in the logger's experiment."""
    found = tracker.get_iteration(iteration_id)
    if found is None:
        raise Unprocessable(f"version: iteration {iteration_id} does not exist", field="version")
    if found.experiment_id != experiment_id:
        raise Unprocessable(
            f"version: iteration {iteration_id} belongs to experiment {found.experiment_id}, not {experiment_id}",
            field="version",
        )
    return found


def rank_child(tracker: Any, driver_id: int, rank: int) -> Iteration | None:
    """A resumed driver's child for this rank, if the earlier attempt made one."""
    found = None
    children = tracker.get_child_iterations(driver_id)
    ranks = tracker.get_parameter_values([c.id for c in children]) if children else {}
    for child in children:
        if ranks.get(child.id, {}).get("rank") == str(rank):
            found = child
    return found


def reopen(tracker: Any, iteration: Iteration, reason: str) -> None:
    """Continue `iteration` (nothing to do if this very process already runs it). Compare-and-set on the
    status read, so of two requeued copies only one takes the run over; the other gets Conflict. A
    server that went away after the iteration was read: the reopen waits in the run's journal, and the
    run goes on (its later writes queue behind it there)."""
    try:
        tracker.reopen_iteration(iteration.id, expected_status=iteration.status, reason=reason)
    except Conflict as error:
        raise Conflict(f"could not resume iteration {iteration.id}: {error.message}", field="version") from None
    except TransportError as error:
        if getattr(error, "journal", None) is None:
            raise


def stored_last_steps(tracker: Any, iteration_id: int) -> dict[str, int]:
    """Each metric key's highest stored step: a resumed run continues after it."""
    last: dict[str, int] = {}
    for point in tracker.get_metrics(iteration_id):
        if point.step > last.get(point.key, -1):
            last[point.key] = point.step
    return last
