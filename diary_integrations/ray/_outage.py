"""What a Tune experiment's recording keeps while the tracking server is away (docs/decisions.md, "Issue
30", outages): a trial whose child could not be created yet (`Unborn`: its results and end wait for the
child, in order), and the ends kept in the local journal (`Deliveries`: sent from there, through the
journal's own replay, as soon as the server answers, and waited for a bounded time at the experiment's
end; what is still there then is replayed once by `diary sync` or the next process that connects).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

from ..client import journal

log = logging.getLogger("diary_integrations.ray")

RETRY_SECONDS = 1.0  # how often a write the server was away for is tried again while Tune runs


@dataclasses.dataclass
class Unborn:
    """A trial whose child's creation the server was away for; tried again (same key) until it answers."""

    trial: Any  # a _trials.TrialInfo (not imported: _trials imports this module)
    tried: float  # time.monotonic() of the last try
    results: list[tuple[dict[str, Any], float]] = dataclasses.field(default_factory=list)  # (result, when)
    end: tuple[Any, dict[str, Any]] | None = None  # (status, end_iteration's data), once the trial ended


class Deliveries:
    """Iterations whose writes (a trial's end, the driver's) wait in the local journal: each journal is
    replayed, in order and once (its idempotency keys), when the server answers again."""

    def __init__(self, tracker: Any) -> None:
        self.tracker = tracker
        self.files: dict[int, Path] = {}  # iteration -> its journal file
        self.tried = 0.0

    def add(self, iteration_id: int, path: Path) -> None:
        self.files[iteration_id] = Path(path)

    def send(self, *, every: float = RETRY_SECONDS) -> None:
        """One quick try (no retries) of each waiting journal, at most once per `every` seconds; a
        journal another thread of this process is replaying (a MetricWriter's probe) is left to it."""
        if not self.files or time.monotonic() - self.tried < every:
            return
        self.tried = time.monotonic()
        for iteration_id, path in sorted(self.files.items()):
            try:
                report = journal.replay_file(self.tracker, path, retries=0, quiet=True)
            except Exception as exc:  # noqa: BLE001 - the journal stays; the next try sends it
                log.info("diary: journal replay of iteration %d failed: %s", iteration_id, exc)
                return
            if not journal.has_pending(self.tracker.url, iteration_id):
                del self.files[iteration_id]
            elif report.left and not report.sent:
                return  # the server is still away: the rest would fail the same way

    def wait(self, deadline: float) -> bool:
        """Send until nothing waits or `deadline` (time.monotonic()) passes; True when all was delivered."""
        while self.files:
            self.send(every=0.0)
            if not self.files or time.monotonic() >= deadline:
                break
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        return not self.files

    def describe(self) -> list[str]:
        """One line per journal still waiting (what it holds)."""
        lines = []
        for path in self.files.values():
            try:
                lines.append(journal.describe(path) if path.exists() else f"{path.name} (being replayed)")
            except OSError:
                lines.append(path.name)
        return lines
