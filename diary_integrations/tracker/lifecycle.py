"""with_iteration and friends: an iteration's status always tells the truth.

Clean exit -> SUCCEEDED. Exception -> FAILED with a one-line `error_message` and the full traceback.
KeyboardInterrupt, SystemExit or SIGTERM -> KILLED. A process that dies without a word stops its
heartbeat, and `reap()` later marks its iteration KILLED.

This module works with any tracker (local or remote): it only calls the tracker's public methods.
"""

from __future__ import annotations

import logging
import signal
import threading
import traceback as traceback_module
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from .enums import IterationStatus
from .errors import Unprocessable
from .records import Iteration

log = logging.getLogger("diary_integrations")

T = TypeVar("T")
MAX_ERROR_MESSAGE = 2000
MAX_TRACEBACK = 200_000
HEARTBEAT_INTERVAL_SECONDS = 30.0


class Terminated(SystemExit):
    """Raised in the main thread when SIGTERM arrives inside a with_iteration, so it unwinds as KILLED."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(128 + signum)
        self.signum = signum

    def __str__(self) -> str:
        return f"received {signal.Signals(self.signum).name}"


def one_line(exc: BaseException) -> str:
    """`"MemoryError: max_depth=12 blew the heap"`: the exception's type and the first line of its text."""
    text = str(exc).strip()
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    message = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return message[:MAX_ERROR_MESSAGE]


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


class Heartbeat:
    """One daemon thread per tracker that keeps every live iteration's heartbeat fresh."""

    _registry: weakref.WeakKeyDictionary[Any, Heartbeat] = weakref.WeakKeyDictionary()
    _registry_lock = threading.Lock()

    def __init__(self, tracker: Any, interval: float) -> None:
        self.tracker = tracker
        self.interval = interval
        self.live: set[int] = set()
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None

    @classmethod
    def of(cls, tracker: Any, interval: float = HEARTBEAT_INTERVAL_SECONDS) -> Heartbeat:
        with cls._registry_lock:
            beat = cls._registry.get(tracker)
            if beat is None:
                beat = cls._registry[tracker] = cls(tracker, interval)
            return beat

    def add(self, *iteration_ids: int) -> None:
        with self.lock:
            self.live.update(iteration_ids)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="diary-heartbeat", daemon=True)
                self.thread.start()

    def discard(self, *iteration_ids: int) -> None:
        with self.lock:
            self.live.difference_update(iteration_ids)

    def _run(self) -> None:
        while True:
            self.wake.wait(self.interval)
            with self.lock:
                ids = sorted(self.live)
                if not ids:
                    self.thread = None
                    return
            try:
                self.tracker.heartbeat(*ids)
            except Exception as exc:  # a missed beat is not worth killing the run over
                log.warning("diary: heartbeat failed: %s", exc)


class _SigtermAsExit:
    """While a with_iteration runs in the main thread, turn SIGTERM into `Terminated` (a SystemExit),
    so the body unwinds and the iteration ends KILLED. Only when nobody else handles SIGTERM."""

    depth = 0
    previous: Any = None

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

    @staticmethod
    def _raise(signum: int, _frame: Any) -> None:
        raise Terminated(signum)


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
        heartbeat_interval: float = HEARTBEAT_INTERVAL_SECONDS,
        name: str = "",
    ) -> None:
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
        _SigtermAsExit.enter()
        return self.iteration  # type: ignore[return-value]

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self.iteration is not None
        iteration_id = self.iteration.id
        _SigtermAsExit.exit()
        Heartbeat.of(self.tracker).discard(iteration_id)
        if exc is None:
            status, message, trace = IterationStatus.SUCCEEDED, "", ""
        else:
            status, message, trace = describe_failure(exc)
        try:
            self.tracker.end_iteration(iteration_id, status, error_message=message, traceback=trace)
        except Exception as error:
            if isinstance(error, Unprocessable) and self._already_ended(iteration_id):
                return None  # the body ended it itself (e.g. with its own status): keep that
            # Never let bookkeeping hide the body's own exception; without one, the caller must know.
            if exc is None:
                raise
            log.error("diary: could not record %s for iteration %s: %s", status.name, iteration_id, error)
        # Returning None re-raises the body's exception, if any.

    def _already_ended(self, iteration_id: int) -> bool:
        try:
            current = self.tracker.get_iteration(iteration_id)
        except Exception:
            return False
        return current is not None and current.ended

    def __call__(self, body: Callable[[Iteration], T]) -> T:
        with self as iteration:
            return body(iteration)
