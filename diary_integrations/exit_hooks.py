"""The end of runs no integration ended, at interpreter exit: one `sys.excepthook` and one atexit handler
for every integration (DiaryLogger, the callback runs). A run still held at exit ends with the truth:
FAILED with the uncaught exception the process dies of, KILLED for Ctrl-C or a SIGTERM turned into an
exit, else what its owner decides (`hold`'s `end`). Metric writers are flushed first, so no point of a
run arrives after its end."""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import sys
import threading
from collections.abc import Callable
from typing import Any

from .tracker.lifecycle import terminated_by_signal
from .writer import flush_all

log = logging.getLogger("diary_integrations")

EndAtExit = Callable[[BaseException | None], None]
WriterOf = Callable[[], Any]

# Owners holding iterations nothing has ended yet: owner -> (its end at exit, its metric writer or None).
_held: dict[Any, tuple[EndAtExit, WriterOf]] = {}
_uncaught: list[BaseException] = []  # the exception the process is exiting with, if any
_hooks_lock = threading.Lock()
_hooks_installed = False


def hold(owner: Any, end: EndAtExit, writer: WriterOf) -> None:
    """`owner` holds a RUNNING iteration: unless `release`d first, interpreter exit calls `end(exc)` with
    the exception the process dies of (None after a clean exit), after flushing `writer()`'s points."""
    _held[owner] = (end, writer)
    install()


def release(owner: Any) -> None:
    """`owner` decided its run's end itself: exit leaves it alone."""
    _held.pop(owner, None)


def install() -> None:
    """Hook `sys.excepthook` (chaining to the hook it replaces) and register the exit handler, once."""
    global _hooks_installed
    with _hooks_lock:
        if _hooks_installed:
            return
        _hooks_installed = True
        previous = sys.excepthook

        def record_uncaught(kind: type[BaseException], value: BaseException, tb: Any) -> None:
            # At a REPL an error does not end the process: exiting later is not a failure.
            if not hasattr(sys, "ps1") and not sys.flags.interactive:
                _uncaught.append(value)
            previous(kind, value, tb)

        sys.excepthook = record_uncaught
        # Registered after writer.py's flush-at-exit, so it runs before it (atexit is last-in, first-out).
        atexit.register(_end_held)


def exit_exception() -> BaseException | None:
    """What the process is exiting with: an uncaught exception, else a SIGTERM turned into an exit that
    propagated out of the program (no excepthook sees a SystemExit), else None."""
    return _uncaught[-1] if _uncaught else terminated_by_signal()


def _end_held() -> None:
    if multiprocessing.parent_process() is not None:
        # A multiprocessing worker (ddp_spawn's ranks, mp.spawn): its target's exception was caught by
        # the worker's bootstrap, so no hook saw it and "SUCCEEDED" could be false. Its launcher ends
        # what the worker left (conclude_launcher), as it always has.
        return
    exc = exit_exception()
    held = list(_held.items())
    # Every writer first (an unpickled copy of a logger has its own), so no point of a run arrives after
    # its end and is refused. The owners ended below report their own journaled points.
    flush_all(quiet=[w for w in (writer() for _, (_, writer) in held) if w is not None])
    for owner, (end, _) in held:
        try:
            end(exc)
        except Exception as error:  # noqa: BLE001 - exit must go on
            log.error("diary: could not end the run of %r at exit: %s", owner, error)
