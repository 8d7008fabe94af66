"""MetricWriter: metric points buffered in memory and written by a background thread in batches.

The training thread only appends to a list; a daemon thread hands full batches to the tracker's bulk
path `log_metric_points`. Memory is bounded: when storage falls behind, `add` blocks on a bounded
queue (back-pressure) instead of dropping points. `flush()` and interpreter exit write everything.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
import weakref
from collections import defaultdict
from typing import Any

from .tracker.errors import DiaryError

log = logging.getLogger("diary_integrations")

# A point as buffered: (iteration_id, key, value, step, recorded_at epoch seconds).
Point = tuple[int, str, float, int, float]

_live: weakref.WeakSet[MetricWriter] = weakref.WeakSet()


class _Flush:
    """A marker put on the queue: set once every batch queued before it has been written."""

    def __init__(self) -> None:
        self.done = threading.Event()


class MetricWriter:
    """Buffers metric points and writes them in batches from one daemon thread."""

    def __init__(
        self,
        tracker: Any,
        *,
        batch_size: int = 1000,
        max_batches: int = 16,
        interval: float = 1.0,
        retries: int = 5,
    ) -> None:
        if batch_size < 1 or max_batches < 1:
            raise ValueError("batch_size and max_batches must be at least 1")
        self.tracker = tracker
        self.batch_size = batch_size
        self.interval = interval
        self.retries = retries
        self.written = 0
        self.dropped = 0
        self.errors: list[str] = []
        self._pending: list[Point] = []
        self._lock = threading.Lock()
        # At most max_batches full batches wait here; a full queue blocks the producer.
        self._queue: queue.Queue[list[Point] | _Flush | None] = queue.Queue(maxsize=max_batches)
        self._thread: threading.Thread | None = None
        _live.add(self)

    def add(self, iteration_id: int, key: str, value: float, step: int, recorded_at: float) -> None:
        """Buffer one point (no I/O); blocks only when `max_batches` full batches are still unwritten."""
        with self._lock:
            self._pending.append((iteration_id, key, value, step, recorded_at))
            if len(self._pending) < self.batch_size:
                return
            batch, self._pending = self._pending, []
        self._start()
        self._queue.put(batch)

    def extend(self, points: list[Point]) -> None:
        """Buffer several points at once (one lock for all of them)."""
        with self._lock:
            self._pending.extend(points)
            if len(self._pending) < self.batch_size:
                return
            batch, self._pending = self._pending, []
        self._start()
        self._queue.put(batch)

    def flush(self, timeout: float | None = None) -> bool:
        """Write everything buffered so far; True once it is written (or given up on after retries)."""
        with self._lock:
            batch, self._pending = self._pending, []
        if self._thread is None and not batch and self._queue.empty():
            return True
        self._start()
        if batch:
            self._queue.put(batch)
        marker = _Flush()
        self._queue.put(marker)
        return marker.done.wait(timeout)

    def backlog(self) -> int:
        """Points handed in and not yet written or given up on (a batch being written counts as gone)."""
        with self._lock:
            pending = len(self._pending)
        return pending + sum(len(item) for item in list(self._queue.queue) if isinstance(item, list))

    def close(self, timeout: float | None = None) -> bool:
        """Flush, then stop the thread (a later `add` starts a new one). True once everything is written."""
        done = self.flush(timeout)
        thread = self._thread
        if done and thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout)
            self._thread = None
        return done

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name="diary-metric-writer", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self.interval)
            except queue.Empty:
                # Nothing full arrived for a while: write what has accumulated so it is not held forever.
                with self._lock:
                    item, self._pending = self._pending, []
                if not item:
                    continue
            if item is None:
                return
            if isinstance(item, _Flush):
                item.done.set()
                continue
            self._write(item)

    def _write(self, batch: list[Point]) -> None:
        by_iteration: dict[int, list[tuple[str, float, int, float]]] = defaultdict(list)
        for iteration_id, key, value, step, recorded_at in batch:
            by_iteration[iteration_id].append((key, value, step, recorded_at))
        for iteration_id, points in by_iteration.items():
            self._write_points(iteration_id, points)

    def _write_points(self, iteration_id: int, points: list[tuple[str, float, int, float]]) -> None:
        delay = 0.5
        for attempt in range(self.retries + 1):
            try:
                self.written += self.tracker.log_metric_points(iteration_id, points)
                return
            except DiaryError as exc:
                # A rule was broken (e.g. the iteration has ended): retrying cannot help.
                if not _transient(exc):
                    self._give_up(iteration_id, points, exc)
                    return
                last: Exception = exc
            except Exception as exc:  # noqa: BLE001 - storage trouble must never kill training
                last = exc
            if attempt < self.retries:
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
        self._give_up(iteration_id, points, last)

    def _give_up(self, iteration_id: int, points: list[Any], exc: Exception) -> None:
        self.dropped += len(points)
        message = f"could not write {len(points)} metric points to iteration {iteration_id}: {exc}"
        self.errors.append(message)
        log.error("diary: %s", message)


def _transient(exc: DiaryError) -> bool:
    """Transport trouble may pass; a broken rule (422, 409, 403...) will not."""
    return type(exc).__name__ == "TransportError"


@atexit.register
def _flush_all() -> None:
    for writer in list(_live):
        try:
            writer.flush(timeout=60)
        except Exception as exc:  # noqa: BLE001 - exit must go on
            log.error("diary: flushing metrics at exit failed: %s", exc)
