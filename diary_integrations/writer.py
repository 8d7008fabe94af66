"""MetricWriter: metric points buffered in memory and written by a background thread in batches.

The training thread only appends to a list; a daemon thread hands full batches to the tracker's bulk
path `log_metric_points`. Memory is bounded: when storage falls behind, `add` blocks on a bounded
queue (back-pressure) instead of dropping points. `flush()` and interpreter exit write everything.
The thread lives only while there is work: it ends once an `interval` passes with nothing buffered or
queued, and the next point starts another; its `stop()` writes what is left and ends it at once (test
harnesses that police leftover threads, such as Lightning's, call it).

Over HTTP nothing is lost to an outage: a batch the server cannot take after the client's retries goes
to the local journal (journal.py), and the writer switches to an outage mode in which later batches
are journaled at once while a quick probe (at most once a second) replays the journal as soon as the
server answers, before any newer batch is sent. A flush that times out ($DIARY_FLUSH_TIMEOUT) journals
what is left, the batch in flight included (its idempotency key makes a second delivery harmless).
A batch holding several iterations' points goes as one request when the server takes it (`POST
/metric/batch`), each iteration's share under its own key, so the journal stays one ordered file per
iteration and a share journaled after a failed coalesced send is still written once.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
import warnings
import weakref
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .tracker.errors import DiaryError

if TYPE_CHECKING:
    from .client import journal

log = logging.getLogger("diary_integrations")

# A point as buffered: (iteration_id, key, value, step, recorded_at epoch seconds).
Point = tuple[int, str, float, int, float]
PROBE_INTERVAL = 1.0  # seconds between quick tries of a server that was gone
PROBE_TIMEOUT = 10.0  # a probe waits at most this for an answer
LOCAL_EXIT_TIMEOUT = 60.0

_live: weakref.WeakSet[MetricWriter] = weakref.WeakSet()
_RETIRED = object()  # what `_take` answers when the thread has ended itself for lack of work


def _import_journal() -> None:
    """The local journal, imported by the first writer that talks to a server: a run on a database never
    journals, and the import is a noticeable part of a short training process's start."""
    global journal
    from .client import journal


class _Flush:
    """A marker put on the queue: set once every batch queued before it has been written. `deadline`
    (monotonic seconds) is when the flush stops waiting; None waits for good."""

    def __init__(self, timeout: float | None = None) -> None:
        self.done = threading.Event()
        self.deadline = None if timeout is None else time.monotonic() + timeout


class _Send:
    """One iteration's share of a batch taken by the writer thread (remote trackers): `state` is new,
    journaled (by the thread in an outage, or by a timed-out flush) or done."""

    __slots__ = ("iteration_id", "points", "write", "error", "state")

    def __init__(self, iteration_id: int, points: list[tuple[str, float, int, float]], write: Any,
                 error: Exception | None) -> None:
        self.iteration_id = iteration_id
        self.points = points
        self.write = write
        self.error = error
        self.state = "new"


class MetricWriter:
    """Buffers metric points and writes them in batches from one daemon thread.

    `written` counts the points the tracker acknowledged, `journaled` those waiting in the local journal
    (HTTP trackers: moved to `written` if this writer delivers them later), `dropped` those refused for
    good or given up on; every point added ends up in exactly one of them once flushed.
    """

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
        self.journaled = 0
        self.journaled_total = 0  # ever journaled by this writer (only grows)
        self.journals: set[Path] = set()
        self.errors: list[str] = []
        self._full_disk_dropped = 0
        self._full_disk_message: int | None = None  # where in `errors` the full-disk count is kept
        self._pending: list[Point] = []
        self._lock = threading.Lock()
        # At most max_batches full batches wait here; a full queue blocks the producer.
        self._queue: queue.Queue[list[Point] | _Flush | None] = queue.Queue(maxsize=max_batches)
        self._thread: threading.Thread | None = None
        # HTTP trackers build their request first, so a batch can be journaled while still in flight.
        self._remote = callable(getattr(tracker, "metric_points_write", None)) and callable(
            getattr(tracker, "replay", None))
        if self._remote:
            _import_journal()
        self._state = threading.Lock()  # guards the sends in flight and the journal bookkeeping
        self._inflight: list[_Send] = []
        self._journaled_keys: dict[str, int] = {}
        self._journaled_iterations: dict[int, Path] = {}  # iteration -> its journal file
        self._outage = False
        self._last_probe = 0.0
        self._groups: bool | None = None  # whether the server takes several iterations per request
        _live.add(self)

    def add(self, iteration_id: int, key: str, value: float, step: int, recorded_at: float) -> None:
        """Buffer one point (no I/O); blocks only when `max_batches` full batches are still unwritten."""
        with self._lock:
            self._pending.append((iteration_id, key, value, step, recorded_at))
            if len(self._pending) < self.batch_size:
                self._ensure_thread_locked()
                return
            batch, self._pending = self._pending, []
        self._enqueue(batch)

    def extend(self, points: list[Point]) -> None:
        """Buffer several points at once (one lock for all of them)."""
        with self._lock:
            self._pending.extend(points)
            if len(self._pending) < self.batch_size:
                self._ensure_thread_locked()
                return
            batch, self._pending = self._pending, []
        self._enqueue(batch)

    def _enqueue(self, batch: list[Point]) -> None:
        # Queued first, then the thread made sure of: a thread ending as idle checks the queue under
        # the same lock (`_retire_locked`), so either it sees the batch or this call sees it gone.
        self._queue.put(batch)  # blocks while full: the thread is alive then, it never ends with work queued
        self._start()

    def default_timeout(self) -> float | None:
        """How long a flush waits by default: $DIARY_FLUSH_TIMEOUT over HTTP, without limit embedded."""
        return journal.flush_timeout() if self._remote else None

    def flush(self, timeout: float | None = None) -> bool:
        """Write everything buffered so far. True once it is written, journaled or given up on. Over HTTP
        the wait is at most `timeout` (default $DIARY_FLUSH_TIMEOUT), then the rest is journaled."""
        if timeout is None:
            timeout = self.default_timeout()
        with self._lock:
            batch, self._pending = self._pending, []
        if self._thread is None and not batch and self._queue.empty():
            return True
        if batch:
            self._put(batch, timeout)
        marker = _Flush(timeout)
        queued = self._put(marker, timeout)
        self._start()
        if not queued or not marker.done.wait(timeout):
            if self._remote:
                self._spill()
                return True
            return False
        return True

    def _put(self, item: list[Point] | _Flush, timeout: float | None) -> bool:
        try:
            self._queue.put(item, timeout=timeout)
            return True
        except queue.Full:
            if isinstance(item, list):  # kept in the buffer: a spill journals it, a later flush writes it
                with self._lock:
                    self._pending[:0] = item
            return False

    def backlog(self) -> int:
        """Points handed in and not yet written or given up on (a batch being written counts as gone)."""
        with self._lock:
            pending = len(self._pending)
        return pending + sum(len(item) for item in list(self._queue.queue) if isinstance(item, list))

    def close(self, timeout: float | None = None) -> bool:
        """Flush, then stop the thread (a later `add` starts a new one). True once everything is written
        (or, over HTTP, journaled)."""
        done = self.flush(timeout)
        thread = self._thread
        if done and thread is not None and thread.is_alive():
            try:
                self._queue.put(None, timeout=1.0)
            except queue.Full:
                return done
            # A send still hanging on a server that went away was journaled: do not wait for it.
            thread.join(0.1 if self._inflight else timeout if timeout is not None else self.default_timeout())
            if not thread.is_alive():
                with self._lock:
                    if self._thread is thread:
                        self._thread = None
        return done

    def stop(self, timeout: float | None = None) -> None:
        """Write what is buffered, then end the thread now (`close` under the name thread harnesses call)."""
        self.close(timeout)

    def _start(self) -> None:
        """Make sure a thread is running to write what is buffered or queued."""
        with self._lock:
            self._ensure_thread_locked()

    def _ensure_thread_locked(self) -> None:
        # The caller holds `_lock`. A thread that retires sets `_thread` to None under that lock, so a
        # point buffered after its last look is always seen here and gets a new thread.
        if self._thread is None or not self._thread.is_alive():
            self._thread = _WriterThread(self)
            self._thread.start()

    def _retire_locked(self) -> bool:
        """End this thread if nothing is buffered or queued (caller holds the queue's mutex, then `_lock`)."""
        if self._pending or self._queue._qsize():  # type: ignore[attr-defined]
            return False
        if self._thread is threading.current_thread():
            self._thread = None
        return True

    def _take(self) -> list[Point] | _Flush | None | bool | object:
        """The next item, registered as in flight in the same step (under the queue's own lock), so a
        flush that times out always finds every point: queued, buffered or in flight. False: nothing."""
        q = self._queue
        with q.not_empty:
            if not q._qsize():  # type: ignore[attr-defined]
                q.not_empty.wait(self.interval)
            if q._qsize():  # type: ignore[attr-defined]
                item = q._get()  # type: ignore[attr-defined]
                q.not_full.notify()
            else:
                # Nothing full arrived for a while: write what has accumulated so it is not held forever.
                with self._lock:
                    item, self._pending = self._pending, []
                    if not item and not self._inflight and self._retire_locked():
                        return _RETIRED  # idle for an interval: the next point starts a thread again
                if not item:
                    return False
            if isinstance(item, list) and self._remote:
                with self._state:
                    self._inflight = self._prepare(item)
            return item

    def _run(self) -> None:
        while True:
            item = self._take()
            if item is False:
                continue
            if item is _RETIRED:
                return
            if item is None:  # close(): end unless points arrived since (then this is a new thread's work)
                with self._queue.mutex, self._lock:
                    if self._retire_locked():
                        return
                continue
            if isinstance(item, _Flush):
                if self._remote and self._journaled_iterations:
                    # A flush is the last chance this writer has to deliver its journal itself (else the
                    # run's end would replay it, and the counters would not know).
                    self._deliver_journal(item.deadline)
                item.done.set()
                continue
            if self._remote:
                try:
                    self._send_together(self._inflight)
                    for send in self._inflight:
                        self._send(send)  # the ones sent together above are done or journaled: skipped
                finally:
                    with self._state:
                        self._inflight = []
            else:
                self._write(item)  # type: ignore[arg-type]

    def _write(self, batch: list[Point]) -> None:
        for iteration_id, points in _by_iteration(batch).items():
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

    # -- over HTTP: the journal ---------------------------------------------------------------------

    def _prepare(self, batch: list[Point]) -> list[_Send]:
        sends = []
        for iteration_id, points in _by_iteration(batch).items():
            try:
                write, error = self.tracker.metric_points_write(iteration_id, points), None
            except Exception as exc:  # noqa: BLE001 - bad points are refused, as the server would
                write, error = None, exc
            sends.append(_Send(iteration_id, points, write, error))
        return sends

    def _send(self, send: _Send) -> None:
        if send.error is not None:
            send.state = "done"
            self._give_up(send.iteration_id, send.points, send.error)
            return
        if send.write is None or send.state != "new":
            return
        if (self._outage or send.iteration_id in self._journaled_iterations
                or journal.has_pending(self.tracker.url, send.iteration_id)):
            # Newer points go behind the ones waiting, so the journal keeps their order.
            with self._state:
                self._journal_send(send)
            self._probe(force=not self._outage)
            return
        try:
            answer = self.tracker.replay(send.write)
        except DiaryError as exc:
            if not _transient(exc):
                with self._state:
                    journaled = send.state == "journaled"
                    send.state = "done"
                if journaled:
                    self._unjournal(send.write.idempotency_key, refused=exc)
                else:
                    self._give_up(send.iteration_id, send.points, exc)
                return
            self._enter_outage(exc)
            with self._state:
                self._journal_send(send)
            return
        except Exception as exc:  # noqa: BLE001 - storage trouble must never kill training
            self._enter_outage(exc)
            with self._state:
                self._journal_send(send)
            return
        with self._state:
            if send.state == "journaled":  # a timed-out flush journaled it meanwhile: delivered after all
                self._settle(send.write.idempotency_key)
            else:
                self.written += answer if isinstance(answer, int) else len(send.points)  # replay's count
            send.state = "done"

    def _send_together(self, sends: list[_Send]) -> None:
        """Several iterations' sends as one request (`POST /metric/batch`), when the server takes it and
        none of them must wait behind its iteration's journal. Each keeps its own idempotency key, claimed
        by the server as if sent alone, so a send journaled after a failure here and replayed alone later
        is written once. Refused as a whole (one iteration ended, say): each goes alone after this, and is
        written or refused on its own."""
        if len(sends) < 2 or self._outage or not self._takes_groups():
            return
        url = self.tracker.url
        together = [s for s in sends if s.error is None and s.write is not None and s.state == "new"
                    and s.iteration_id not in self._journaled_iterations
                    and not journal.has_pending(url, s.iteration_id)]
        if len(together) < 2:
            return
        try:
            counts = self.tracker.replay_metric_writes([(s.iteration_id, s.write) for s in together])
        except DiaryError as exc:
            if not _transient(exc):
                return
            failure: Exception = exc
        except Exception as exc:  # noqa: BLE001 - storage trouble must never kill training
            failure = exc
        else:
            with self._state:
                for send, count in zip(together, counts, strict=True):
                    if send.state == "journaled":  # a timed-out flush journaled it meanwhile: delivered
                        self._settle(send.write.idempotency_key)
                    elif send.state == "new":
                        self.written += count
                    send.state = "done"
            return
        self._enter_outage(failure)
        with self._state:
            for send in together:
                self._journal_send(send)

    def _takes_groups(self) -> bool:
        """Whether the tracker sends several iterations' points in one request (asked once)."""
        if self._groups is None:
            ask = getattr(self.tracker, "takes_metric_groups", None)
            try:
                self._groups = bool(ask()) if callable(ask) else False
            except Exception:  # noqa: BLE001 - then one request per iteration, as before
                self._groups = False
        return self._groups

    def _journal_send(self, send: _Send) -> None:
        """Journal one send (caller holds `_state`) unless it is already in the journal or delivered."""
        if send.state != "new" or send.write is None:
            return
        self._journal(send.iteration_id, [send])

    def _journal(self, iteration_id: int, sends: list[_Send]) -> None:
        entries = [journal.Entry(s.write, "points", len(s.points)) for s in sends if s.write is not None]
        try:
            path = journal.append(self.tracker.url, iteration_id, entries)
        except Exception as exc:  # noqa: BLE001 - a full disk: the points are lost, and said so
            for s in sends:
                s.state = "done"
                self._give_up(iteration_id, s.points, exc)
            return
        for s in sends:
            if s.write is None:
                continue
            s.state = "journaled"
            n = len(s.points)
            self._journaled_keys[s.write.idempotency_key] = n
            self.journaled += n
            self.journaled_total += n
        self._journaled_iterations[iteration_id] = path
        self.journals.add(path)

    def _settle(self, key: str) -> None:
        """A journaled write turned out delivered (caller holds `_state`)."""
        n = self._journaled_keys.pop(key, None)
        if n is not None:
            self.journaled -= n
            self.written += n

    def _unjournal(self, key: str, *, refused: Exception) -> None:
        with self._state:
            n = self._journaled_keys.pop(key, None)
            if n is None:
                return
            self.journaled -= n
            self.dropped += n
        message = f"{n} journaled metric points refused by the server: {refused}"
        self.errors.append(message)
        log.error("diary: %s", message)

    def _enter_outage(self, exc: Exception) -> None:
        if not self._outage:
            log.warning("diary: %s is unreachable (%s); metric points go to the local journal until it answers",
                        self.tracker.url, exc)
        self._outage = True
        self._last_probe = time.monotonic()
        journal.mark_outage(self.tracker.url, True)

    def _deliver_journal(self, deadline: float | None) -> None:
        """Try this writer's journals until they are delivered or the flush's time is nearly up (a server
        restarting answers within a few seconds). Each try uses the client's own retries: the first
        request after a restart often meets a pooled connection the dead server left."""
        while True:
            self._probe(force=True, retries=None)
            left = None if deadline is None else deadline - time.monotonic()
            if not self._journaled_iterations or (left is not None and left < 2 * PROBE_INTERVAL):
                return
            if deadline is None and self._outage:
                return  # a flush without a bound: the journal waits for `diary sync` or the next probe
            time.sleep(PROBE_INTERVAL)

    def _probe(self, *, force: bool = False, retries: int | None = 0) -> None:
        """Replay this writer's journals (one quick try each, unless `retries` says otherwise); the outage
        ends once they are delivered."""
        now = time.monotonic()
        if not force and now - self._last_probe < PROBE_INTERVAL:
            return
        self._last_probe = now
        url = self.tracker.url
        delivered = 0
        for iteration_id, path in sorted(self._journaled_iterations.items()):
            try:
                report = journal.replay_file(self.tracker, path, retries=retries,
                                             timeout=min(PROBE_TIMEOUT, getattr(self.tracker, "timeout", 60.0)))
            except Exception as exc:  # noqa: BLE001 - the journal stays; the next probe tries again
                log.info("diary: journal replay failed: %s", exc)
                return
            delivered += report.sent
            with self._state:
                for key in report.delivered_keys:
                    self._settle(key)
            for key in report.rejected_keys:
                self._unjournal(key, refused=DiaryError("; ".join(report.errors) or "refused"))
            if report.left:
                self._outage = True
                journal.mark_outage(url, True)
                return
            if not journal.has_pending(url, iteration_id, path.parent.parent):
                del self._journaled_iterations[iteration_id]
        if self._outage and delivered:
            log.warning("diary: %s answers again; the journaled metric points were delivered", url)
        self._outage = bool(self._journaled_iterations)
        journal.mark_outage(url, self._outage)

    def _spill(self) -> None:
        """A flush timed out: journal every point not yet written, in order (in flight, queued, buffered)."""
        q = self._queue
        with q.mutex:
            items = []
            while q._qsize():  # type: ignore[attr-defined]
                items.append(q._get())  # type: ignore[attr-defined]
            q.not_full.notify_all()
            with self._lock:
                buffered, self._pending = self._pending, []
            batches = [i for i in items if isinstance(i, list)]
            if buffered:
                batches.append(buffered)
            with self._state:
                for send in self._inflight:
                    if send.error is None:
                        self._journal_send(send)
                for batch in batches:
                    for send in self._prepare(batch):
                        if send.error is not None:
                            self._give_up(send.iteration_id, send.points, send.error)
                        else:
                            self._journal_send(send)
            if any(i is None for i in items):
                q._put(None)  # type: ignore[attr-defined]
                q.not_empty.notify()
        for item in items:
            if isinstance(item, _Flush):
                item.done.set()

    def _give_up(self, iteration_id: int, points: list[Any], exc: Exception) -> None:
        self.dropped += len(points)
        if self._remote and isinstance(exc, journal.JournalFull):
            self._dropped_on_a_full_disk(len(points), exc)
            return
        message = f"could not write {len(points)} metric points to iteration {iteration_id}: {exc}"
        self.errors.append(message)
        log.error("diary: %s", message)

    def _dropped_on_a_full_disk(self, n: int, exc: OSError) -> None:
        """A full disk under the journal is one warning (when it starts) and one error line that keeps the
        count, not a line per batch: the points the server could not take are dropped until there is room.
        Runs' ends are still kept (journal.py reserves room for them)."""
        self._full_disk_dropped += n
        message = (f"{exc.strerror or exc}: {self._full_disk_dropped} metric points that could not reach the "
                   f"server were dropped, not journaled")
        if self._full_disk_message is None:
            log.warning("diary: %s; free space there to keep the next ones", message)
            self._full_disk_message = len(self.errors)
            self.errors.append(message)
        else:
            self.errors[self._full_disk_message] = message


class _WriterThread(threading.Thread):
    """The writer's daemon thread; `stop()` writes what is left and ends it (Lightning's test harness, and
    others that police leftover threads, call `stop` on a daemon thread they find still running)."""

    def __init__(self, writer: MetricWriter) -> None:
        super().__init__(target=writer._run, name="diary-metric-writer", daemon=True)
        self._writer = weakref.ref(writer)

    def stop(self) -> None:
        writer = self._writer()
        if writer is not None:
            writer.close()
        if self.is_alive() and self is not threading.current_thread():
            self.join(LOCAL_EXIT_TIMEOUT)


def _by_iteration(batch: list[Point]) -> dict[int, list[tuple[str, float, int, float]]]:
    by_iteration: dict[int, list[tuple[str, float, int, float]]] = defaultdict(list)
    for iteration_id, key, value, step, recorded_at in batch:
        by_iteration[iteration_id].append((key, value, step, recorded_at))
    return by_iteration


def _transient(exc: DiaryError) -> bool:
    """Transport trouble may pass; a broken rule (422, 409, 403...) will not."""
    return type(exc).__name__ == "TransportError"


def journal_notice(paths: set[Path] | list[Path], points: int) -> str:
    """The one sentence that tells a user where undelivered data waits and how to send it."""
    _import_journal()
    files = ", ".join(str(p) for p in sorted(paths))
    return (f"{points} metric point{'s' if points != 1 else ''} could not reach the server and "
            f"{'are' if points != 1 else 'is'} kept in the local journal {files}; "
            f"`{journal.SYNC_COMMAND}` sends {'them' if points != 1 else 'it'} (exactly once)")


def flush_all(quiet: Iterable[MetricWriter] = ()) -> None:
    """Flush every live writer (over HTTP at most $DIARY_FLUSH_TIMEOUT each, then journal the rest); one
    warning per writer for what went to the journal, except for writers in `quiet` (whose owner reports
    it itself). Interpreter exit runs this before it ends any run."""
    silent = {id(w) for w in quiet}
    for writer in list(_live):
        before = writer.journaled_total
        try:
            writer.flush(timeout=None if writer._remote else LOCAL_EXIT_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - exit must go on
            log.error("diary: flushing metrics at exit failed: %s", exc)
            continue
        added = writer.journaled_total - before
        if added and id(writer) not in silent:
            from .reporting import TrackingWarning

            warnings.warn(f"diary: {journal_notice(writer.journals, added)}", TrackingWarning, stacklevel=2)


atexit.register(flush_all)
