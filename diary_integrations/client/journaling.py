"""Journal hooks: the writes of a run that must not be lost are kept in the local journal (journal.py)
when the server cannot take them, and sent after the ones already waiting there."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..tracker.errors import (
    TransportError,
    Unprocessable,
)
from ..tracker.validation import (
    check_id,
)
from .base import (
    _point_rows,
)
from .idempotency import PendingWrite, write_key
from .transport import RemoteBase


class JournalMixin(RemoteBase):
    """The writes of a run that must reach the server, and the one a MetricWriter journals itself."""

    def metric_points_write(self, iteration_id: int, points: Iterable[Sequence[Any]]) -> PendingWrite | None:
        """The request `log_metric_points` would send, with its idempotency key, not sent yet: a
        MetricWriter sends it with `replay` and can journal it while it is still in flight. None for no
        points; bad points raise here, as `log_metric_points` would."""
        iteration_id = check_id(iteration_id, "iteration_id")
        rows = _point_rows(points)
        if not rows:
            return None
        return PendingWrite("POST", f"/metric/iteration/{iteration_id}/batch", None, {"points": rows}, write_key())

    def takes_metric_groups(self) -> bool:
        """Whether the server takes several iterations' points in one request (`POST /metric/batch`)."""
        self.body_budget()
        return self._server_groups

    def replay_metric_writes(self, writes: Sequence[tuple[int, PendingWrite]]) -> list[int]:
        """Several `metric_points_write` requests (with their iterations) sent as one `POST /metric/batch`,
        one transaction on the server. Each group carries its own write's idempotency key, claimed as
        if that write had been sent alone: a write delivered here is never applied again when it is
        replayed alone later (from a journal), nor the other way round. Returns each write's count;
        raises as `replay` does (all or nothing)."""
        groups = [{"iteration_id": check_id(iteration_id, "iteration_id"), "points": write.body["points"],
                   "idempotency_key": write.idempotency_key} for iteration_id, write in writes]
        answer = self._call("POST", "/metric/batch", body={"iterations": groups})
        return [int(n) for n in answer["counts"]]

    def _write_or_journal(self, iteration_id: int, kind: str, count: int, path: str, body: Any) -> Any:
        """A write of a run's data or end that must not be lost: sent now, unless this run already has
        writes waiting in the local journal (then it goes after them, and the journal is replayed at
        once if the server answers); journaled when the server cannot be reached. A journaled write
        raises TransportError with `journal` (the file) set. Returns the answer as `replay` decodes it."""
        from . import journal

        write = PendingWrite("POST", path, None, body, write_key())
        entry = journal.Entry(write, kind, count)
        if journal.has_pending(self.url, iteration_id):
            file = journal.append(self.url, iteration_id, [entry])
            report = journal.replay_file(self, file, retries=0 if journal.in_outage(self.url) else None)
            if write.idempotency_key in report.answers:
                return report.answers[write.idempotency_key]
            error = TransportError(
                f"{write.method} {self.url}{path}: kept in the journal {file} behind earlier writes of "
                f"iteration {iteration_id} ({'; '.join(report.errors) or 'claimed meanwhile by another replayer'})",
                request=write,
            )
            error.journal = file  # type: ignore[attr-defined]
            if journal.has_pending(self.url, iteration_id) or not report.rejected:
                raise error
            raise Unprocessable(f"{kind} of iteration {iteration_id} refused: {'; '.join(report.errors)}")
        try:
            return self.replay(write)
        except TransportError as exc:
            exc.request = write
            exc.journal = journal.append(self.url, iteration_id, [entry])  # type: ignore[attr-defined]
            raise
