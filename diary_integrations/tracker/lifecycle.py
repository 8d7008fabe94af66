"""with_iteration and friends: an iteration's status always tells the truth.

Clean exit -> SUCCEEDED. Exception -> FAILED with a one-line `error_message` and the full traceback.
KeyboardInterrupt, SystemExit or SIGTERM -> KILLED. A process that dies without a word stops its
heartbeat, and `reap()` later marks its iteration KILLED.

This module works with any tracker (local or remote): it only calls the tracker's public methods.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import signal
import threading
import traceback as traceback_module
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from .enums import IterationStatus
from .errors import IterationEnded, Unprocessable, one_line

if TYPE_CHECKING:  # only named in annotations; a training process that never reads records skips their import
    from .records import Iteration

log = logging.getLogger("diary_integrations")

T = TypeVar("T")
MAX_TRACEBACK = 200_000
LEASE_ENV = "DIARY_HEARTBEAT_LEASE"
DEFAULT_LEASE_SECONDS = 90.0
# With the default lease: a live iteration beats every 30 s.
HEARTBEAT_INTERVAL_SECONDS = DEFAULT_LEASE_SECONDS / 3


class Terminated(SystemExit):
    """Raised in the main thread when SIGTERM arrives inside a with_iteration, so it unwinds as KILLED."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(128 + signum)
        self.signum = signum

    def __str__(self) -> str:
        return f"received {signal.Signals(self.signum).name}"


def is_kill(exc: BaseException) -> bool:
    """Interruptions (Ctrl-C, SystemExit, SIGTERM) end a run as KILLED; anything else is a failure."""
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return True
    # Lightning's SIGTERMException subclasses SystemExit in 2.x; older versions did not.
    return type(exc).__name__ in {"SIGTERMException", "CancelledError"}


def describe_failure(exc: BaseException) -> tuple[IterationStatus, str, str]:
    """The (status, error_message, traceback) an iteration ends with when `exc` ended it."""
    status = IterationStatus.KILLED if is_kill(exc) else IterationStatus.FAILED
    text = "".join(traceback_module.format_exception(type(exc), exc, exc.__traceback__))
    if len(text) > MAX_TRACEBACK:
        text = text[: MAX_TRACEBACK // 2] + "\n... (traceback truncated) ...\n" + text[-MAX_TRACEBACK // 2 :]
    return status, one_line(exc), text


def heartbeat_lease() -> float:
    """How long (seconds) a RUNNING iteration may go without a heartbeat before a reaper counts its process
    dead: `DIARY_HEARTBEAT_LEASE`, 90 by default. Set the same lease for a server and its clients."""
    raw = os.environ.get(LEASE_ENV, "").strip()
    if not raw:
        return DEFAULT_LEASE_SECONDS
    try:
        lease = float(raw)
    except ValueError:
        lease = math.nan
    if not (math.isfinite(lease) and lease > 0):
        log.warning("diary: %s=%r is not a positive number of seconds; using %g", LEASE_ENV, raw,
                    DEFAULT_LEASE_SECONDS)
        return DEFAULT_LEASE_SECONDS
    return lease


def heartbeat_interval() -> float:
    """How often a live iteration beats: a third of the lease, so two beats may be lost before it expires."""
    return heartbeat_lease() / 3


class Heartbeat:
    """One daemon thread per tracker that keeps every live iteration's heartbeat fresh. The thread exits as
    soon as the last iteration it beats for is discarded (within a beat's round trip), and stops beating an
    iteration the tracker says has ended (a reaper's KILLED), with one warning for it."""

    _registry: weakref.WeakKeyDictionary[Any, Heartbeat] = weakref.WeakKeyDictionary()
    _registry_lock = threading.Lock()
    _every: weakref.WeakSet[Heartbeat] = weakref.WeakSet()  # every heartbeat that ever started, for exit
    _exit_registered = False

    def __init__(self, tracker: Any, interval: float) -> None:
        self.tracker = tracker
        self.interval = interval
        self.live: set[int] = set()
        self.warned: set[int] = set()
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None
        # The thread that last found nothing to beat for: it has let go of `thread` (so `add` starts a
        # new one) but may still be finishing, and `join_idle`/`stop` wait for it too.
        self.retired: threading.Thread | None = None
        self.stopping = False  # stop() was called: the thread ends at once (a later add starts another)
        self.failing = False  # the last beat failed and that was said: the next failures are logged at INFO

    @classmethod
    def of(cls, tracker: Any, interval: float | None = None) -> Heartbeat:
        """The tracker's heartbeat; `interval` (default: a third of `DIARY_HEARTBEAT_LEASE`) applies when
        this call creates it."""
        with cls._registry_lock:
            beat = cls._registry.get(tracker)
            if beat is None:
                beat = cls._registry[tracker] = cls(tracker, heartbeat_interval() if interval is None else interval)
            return beat

    @classmethod
    def stop_for(cls, tracker: Any, timeout: float = 2.0) -> None:
        """A tracker is closing: its heartbeat (if it has one) ends now, and a beat in flight fails
        quietly. Iterations it still ran age until the reaper's lease ends them, as for a process that
        exited; a later `add` (the tracker used again) starts beating again."""
        with cls._registry_lock:
            beat = cls._registry.get(tracker)
        if beat is not None:
            beat.stop(timeout)

    @classmethod
    def stop_all(cls, timeout: float = 1.0) -> None:
        """The process is exiting: no heartbeat beats on while the exit hooks end the runs (nor says that
        a server it can no longer reach, often stopped by the same exit, refused it)."""
        for beat in list(cls._every):
            beat.stop(timeout)

    def add(self, *iteration_ids: int) -> None:
        with self.lock:
            self.live.update(iteration_ids)
            self.stopping = False  # under the lock the thread checks it with: it beats on, or a new one starts
            if self.thread is None or not self.thread.is_alive():
                self.thread = _HeartbeatThread(self)
                self.thread.start()
        with Heartbeat._registry_lock:
            Heartbeat._every.add(self)
            if not Heartbeat._exit_registered:
                # Registered at the first beat, after the handlers registered at import: atexit runs the
                # last registered first, so the beats stop before the integrations' exit hooks end runs.
                Heartbeat._exit_registered = True
                atexit.register(Heartbeat.stop_all)

    def discard(self, *iteration_ids: int) -> None:
        with self.lock:
            self.live.difference_update(iteration_ids)
            if not self.live:
                self.wake.set()  # nothing left to beat for: let the thread end now, not an interval later

    def join_idle(self, timeout: float = 10.0) -> None:
        """Wait for the thread to end when nothing is left to beat for (a logger's finalize), so it does
        not outlive the run that started it."""
        with self.lock:
            thread = (self.thread or self.retired) if not self.live else None
            if thread is not None:
                self.wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            self.wake.wait(self.interval)
            with self.lock:
                self.wake.clear()
                ids = sorted(self.live)
                if not ids or self.stopping:
                    self.retired, self.thread = self.thread, None
                    return
            try:
                self.tracker.heartbeat(*ids)
            except IterationEnded as exc:
                self._stop_beating(exc, ids)
            except Exception as exc:  # a missed beat is not worth killing the run over
                self._failed(exc)
            else:
                if self.failing:
                    self.failing = False
                    log.info("diary: heartbeat works again")

    def _failed(self, exc: Exception) -> None:
        """Say a failed beat once (a server away fails every beat until it is back; one line says it),
        and nothing when the tracker was closed or its iterations ended while the beat was on its way."""
        with self.lock:
            if self.stopping or not self.live:
                return
            first, self.failing = not self.failing, True
        if first:
            log.warning("diary: heartbeat failed: %s (said once; the next beats are tried as usual)", exc)
        else:
            log.info("diary: heartbeat failed again: %s", exc)

    def stop(self, timeout: float = 10.0) -> None:
        """End the thread now, even with iterations left to beat for (their heartbeat then ages until a
        later `add` starts the thread again). For harnesses that police leftover threads at a test's end
        (Lightning's calls `stop()` on a daemon thread it finds): interpreter exit ends the runs anyway."""
        with self.lock:
            thread = self.thread or self.retired
            self.stopping = True
            self.wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _stop_beating(self, exc: IterationEnded, ids: list[int]) -> None:
        """The tracker ended some of these iterations behind this process's back: beat them no more, and
        say so once for each (their later writes are refused; the run itself goes on)."""
        ended = {i: status for i, status in exc.ended.items() if i in ids} if exc.ended else dict.fromkeys(ids, "")
        with self.lock:
            # One discarded while the beat was on its way was ended by this process itself: no news.
            fresh = [i for i in ended if i in self.live and i not in self.warned]
            self.live.difference_update(ended)
            self.warned.update(fresh)
        for iteration_id in fresh:
            status = ended[iteration_id] or "ended"
            log.warning(
                "diary: iteration %s was marked %s while this process still ran it (%s); its heartbeat stops "
                "here and its status stays %s", iteration_id, status, exc.message, status,
            )


class _HeartbeatThread(threading.Thread):
    """The heartbeat's daemon thread, with the `stop()` that thread-policing harnesses call."""

    def __init__(self, beat: Heartbeat) -> None:
        super().__init__(target=beat._run, name="diary-heartbeat", daemon=True)
        self._beat = weakref.ref(beat)

    def stop(self) -> None:
        beat = self._beat()
        if beat is not None:
            beat.stop()


class _SigtermAsExit:
    """While a with_iteration runs in the main thread, turn SIGTERM into `Terminated` (a SystemExit),
    so the body unwinds and the iteration ends KILLED. Only when nobody else handles SIGTERM.

    While the end is being written (`held`), a SIGTERM waits: it is delivered again, to the handler
    that was there before, once the last with_iteration has exited. Launchers SIGTERM the surviving
    ranks right after one dies (torchrun 0.1 s later), often while they are writing their own end;
    killed then, that end would never be recorded."""

    depth = 0
    holding = 0
    pending: int | None = None
    previous: Any = None
    delivered: Terminated | None = None  # the last SIGTERM turned into an exit (read at interpreter exit)

    @classmethod
    def enter(cls) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if cls.depth == 0:
            if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
                return
            cls.previous = signal.signal(signal.SIGTERM, cls._raise)
        cls.depth += 1

    @classmethod
    def exit(cls) -> None:
        if threading.current_thread() is not threading.main_thread() or cls.depth == 0:
            return
        cls.depth -= 1
        if cls.depth == 0:
            signal.signal(signal.SIGTERM, cls.previous)
            pending, cls.pending = cls.pending, None
            if pending is not None:
                os.kill(os.getpid(), pending)  # the signal it was sent, now that the end is written

    @classmethod
    @contextmanager
    def held(cls) -> Iterator[None]:
        """Write an iteration's end without being killed half-way by SIGTERM (see the class)."""
        if threading.current_thread() is not threading.main_thread() or cls.depth == 0:
            yield
            return
        cls.holding += 1
        try:
            yield
        finally:
            cls.holding -= 1

    @classmethod
    def _raise(cls, signum: int, _frame: Any) -> None:
        if cls.holding:
            cls.pending = signum
            return
        cls.delivered = Terminated(signum)
        raise cls.delivered


def sigterm_as_exit() -> None:
    """In the main thread, and only when nobody else handles SIGTERM: turn it into `Terminated` (a
    SystemExit) until the matching `sigterm_restored`, so the program unwinds and its runs end KILLED."""
    _SigtermAsExit.enter()


def sigterm_restored() -> None:
    """Undo one `sigterm_as_exit`; a SIGTERM that arrived while an end was written is delivered now."""
    _SigtermAsExit.exit()


def sigterm_held() -> Any:
    """A context in which a SIGTERM waits until the last `sigterm_restored` (an end being written)."""
    return _SigtermAsExit.held()


def terminated_by_signal() -> Terminated | None:
    """The SIGTERM turned into an exit in this process (see `sigterm_as_exit`), if one was."""
    return _SigtermAsExit.delivered


class IterationRun:
    """Returned by `with_iteration(...)`: use it with `with` (binds the Iteration), or call it with a
    function of the Iteration to run that function inside and get its value back."""

    def __init__(
        self,
        tracker: Any,
        experiment_id: int,
        *,
        parent_iteration_id: int | None = None,
        notes: str = "",
        snapshot: bool | None = None,
        heartbeat_interval: float | None = None,
        name: str = "",
        system_metrics: bool = False,
        system_metrics_interval: float = 10.0,
    ) -> None:
        if system_metrics:
            from ..system_metrics import check_options

            check_options(system_metrics, system_metrics_interval)
        self.system_metrics = system_metrics
        self.system_metrics_interval = system_metrics_interval
        self.sampler: Any = None
        self.tracker = tracker
        self.experiment_id = experiment_id
        self.parent_iteration_id = parent_iteration_id
        self.notes = notes
        self.snapshot = snapshot
        self.name = name
        self.heartbeat_interval = heartbeat_interval
        self.iteration: Iteration | None = None

    def __enter__(self) -> Iteration:
        iteration_id, _ = self.tracker.create_iteration(
            self.experiment_id,
            parent_iteration_id=self.parent_iteration_id,
            notes=self.notes,
            snapshot=self.snapshot,
            **({"name": self.name} if self.name else {}),
        )
        self.iteration = self.tracker.get_iteration(iteration_id)
        Heartbeat.of(self.tracker, self.heartbeat_interval).add(iteration_id)
        if self.system_metrics:
            from .. import system_metrics

            # Its own thread and MetricWriter; stopped (and flushed) before the end is written.
            self.sampler = system_metrics.start(self.tracker, iteration_id, interval=self.system_metrics_interval)
        _SigtermAsExit.enter()
        return self.iteration  # type: ignore[return-value]

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self.iteration is not None
        try:
            with _SigtermAsExit.held():
                self._end(exc)
        finally:
            _SigtermAsExit.exit()
        # Returning None re-raises the body's exception, if any.

    def _end(self, exc: BaseException | None) -> None:
        assert self.iteration is not None
        iteration_id = self.iteration.id
        Heartbeat.of(self.tracker).discard(iteration_id)
        if self.sampler is not None:
            from ..system_metrics import stop_quietly

            stop_quietly(self.sampler)
            self.sampler = None
        if exc is None:
            status, message, trace = IterationStatus.SUCCEEDED, "", ""
        else:
            status, message, trace = describe_failure(exc)
        try:
            self.tracker.end_iteration(iteration_id, status, error_message=message, traceback=trace)
        except Exception as error:
            if isinstance(error, Unprocessable) and self._already_ended(iteration_id):
                return None  # the body ended it itself (e.g. with its own status): keep that
            kept = getattr(error, "journal", None)
            if kept is not None:
                # The server is unreachable and a RemoteTracker kept the end in its local journal (after
                # the run's journaled points): the status is not lost, so the run is not failed for it.
                message = (f"diary: could not reach the server to record {status.name} for iteration "
                           f"{iteration_id}; it is kept in the local journal {kept}: `diary sync` sends it")
                log.info("%s (%s)", message, error)
                warnings.warn(message, RuntimeWarning, stacklevel=2)
                return None
            # Never let bookkeeping hide the body's own exception; without one, the caller must know — unless
            # the local disk failed us (a full journal): the body succeeded, and a with_iteration must not
            # raise from bookkeeping after that. It is said instead.
            if exc is None and not isinstance(error, OSError):
                raise
            log.error("diary: could not record %s for iteration %s: %s", status.name, iteration_id, error)
            if exc is None:
                warnings.warn(f"diary: could not record {status.name} for iteration {iteration_id}: {error}",
                              RuntimeWarning, stacklevel=2)

    def _already_ended(self, iteration_id: int) -> bool:
        try:
            current = self.tracker.get_iteration(iteration_id)
        except Exception:
            return False
        return current is not None and current.ended

    def __call__(self, body: Callable[[Iteration], T]) -> T:
        with self as iteration:
            return body(iteration)


class OpensIterationRuns:
    """`with_iteration`, written once for every transport: it only calls the tracker's own methods."""

    def with_iteration(
        self,
        experiment_id: int,
        *,
        parent_iteration_id: int | None = None,
        notes: str = "",
        snapshot: bool | None = None,
        name: str = "",
        system_metrics: bool = False,
        system_metrics_interval: float = 10.0,
    ) -> IterationRun:
        """A context manager (and call form) that opens an iteration and finalises it truthfully.
        `system_metrics=True` records the process's CPU, memory and GPUs as `system/...` metrics every
        `system_metrics_interval` seconds while the body runs (diary_integrations.system_metrics)."""
        return IterationRun(
            self, experiment_id, parent_iteration_id=parent_iteration_id, notes=notes, snapshot=snapshot, name=name,
            system_metrics=system_metrics, system_metrics_interval=system_metrics_interval,
        )
