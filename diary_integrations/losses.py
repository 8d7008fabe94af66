"""One TrackingWarning, at the end of a run, for what could not be recorded: the status, metric points
lost (refused, or given up on after the retries) or still unwritten, and what waits in the local
journal because the server was away. Shared by DiaryLogger and the callback runs."""

from __future__ import annotations

import logging
from typing import Any

from .reporting import warn_tracking

log = logging.getLogger("diary_integrations")


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'s' if n != 1 else ''}"


def report(
    run_id: int | None,
    writer: Any,
    failure: Exception | None,
    pending: int,
    *,
    dropped: int,
    journaled_params: int = 0,
    waited: float,
    stacklevel: int = 4,
    last_error: str | None = None,
) -> None:
    """Warn once about run `run_id`'s end: `failure` (the end could not be written), `pending` points
    still unwritten after `waited` seconds, `dropped` points lost, and what `writer` (a MetricWriter or
    None) and the end left in the journal. Silent when everything was recorded."""
    # Points journaled in an outage and delivered once the server answered again are not reported.
    journaled = writer.journaled if writer is not None else 0
    kept = getattr(failure, "journal", None)
    if kept is not None or journaled:
        # The server is unreachable: nothing is lost, it waits in the journal. One warning says where.
        files = set(writer.journals) if writer is not None and journaled else set()
        if kept is not None:
            files.add(kept)
        what = []
        if journaled:
            what.append(_count(journaled, "metric point"))
        if kept is not None and journaled_params:
            # They wait in the same file, ahead of the end (a delivered end replayed them first).
            what.append(_count(journaled_params, "hyperparameter"))
        if kept is not None:
            what.append("the end of the run")
        lost_now = f"; {_count(dropped, 'metric point')} could not be written" if dropped else ""
        plural = len(what) > 1 or journaled > 1
        warn_tracking(
            f"iteration {run_id}: {' and '.join(what)} could not reach the server and "
            f"{'are' if plural else 'is'} kept in the local journal {', '.join(map(str, sorted(files)))}; "
            f"`diary sync` sends {'them' if plural else 'it'} (exactly once)" + lost_now,
            logger=log,
            stacklevel=stacklevel,
        )
        if kept is not None or not (failure or pending):
            return
    lost = []
    if dropped:
        lost.append(f"{_count(dropped, 'metric point')} could not be written")
    if pending:
        lost.append(f"{_count(pending, 'metric point')} still unwritten after {waited:g} s")
    if failure is None and not lost:
        return
    run = f"iteration {run_id}"
    if failure is not None:
        warn_tracking("; ".join([f"could not record the end of {run}", *lost]), failure, logger=log,
                      stacklevel=stacklevel)
    else:
        last = writer.errors[-1] if writer is not None and writer.errors else last_error
        warn_tracking(f"{run}: " + "; ".join(lost), last and f"last error: {last}", logger=log, stacklevel=stacklevel)
