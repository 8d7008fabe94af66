"""The sidecar process: `python -m diary_integrations.sidecar`, started by SidecarTracker. It reads its
configuration (the database URL, the process it serves) from stdin, then applies each pickled call that
follows with a LocalTracker and writes back `(True, value)` or `(False, error)`, until stdin closes."""

from __future__ import annotations

import builtins
import os
import pickle
import signal
import sys
from contextlib import nullcontext
from typing import IO, Any

from ..tracker import environment, liveness
from ..tracker.errors import DiaryError, TransportError
from ..tracker.keys import using_key

PROTOCOL = pickle.HIGHEST_PROTOCOL
# Safe to send again after a sidecar died mid-call: they write nothing, or nothing a repeat changes.
_REPEATABLE_PREFIXES = ("get_", "count_", "list_", "search_")
_REPEATABLE = {"heartbeat"}


def _interface(tracker: Any) -> dict[str, Any]:
    methods = sorted(
        name for name in dir(type(tracker)) if not name.startswith("_") and callable(getattr(type(tracker), name))
    )
    keyed = [name for name in methods if getattr(getattr(type(tracker), name), "keyed", False)]
    repeatable = set(keyed) | _REPEATABLE | {n for n in methods if n.startswith(_REPEATABLE_PREFIXES)}
    return {"url": tracker.url, "methods": methods, "keyed": keyed, "repeatable": sorted(repeatable)}


def _answer(tracker: Any, request: tuple[str, tuple[Any, ...], dict[str, Any], str | None]) -> bytes:
    name, args, kwargs, key = request
    try:
        with using_key(key) if key is not None else nullcontext():
            reply: tuple[bool, Any] = (True, getattr(tracker, name)(*args, **kwargs))
    except DiaryError as exc:
        reply = (False, exc)
    except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller
        # A builtin error (a TypeError for a wrong argument) goes back as it is; a driver's or SQLAlchemy's
        # would make the training process import SQLAlchemy to unpickle it: it becomes a TransportError,
        # which writers treat as trouble that may pass, as they do the original in process.
        same = type(exc).__module__ == "builtins" and getattr(builtins, type(exc).__name__, None) is type(exc)
        reply = (False, exc if same else TransportError(f"{name}: {type(exc).__name__}: {exc}"))
    try:
        return pickle.dumps(reply, protocol=PROTOCOL)
    except Exception as exc:  # noqa: BLE001 - an answer that cannot travel is an error that can
        return pickle.dumps((False, TransportError(f"{name}: its answer cannot be sent back ({exc})")), PROTOCOL)


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    from ..tracker.local import LocalTracker

    config: dict[str, Any] = pickle.load(requests)
    if config.get("owner"):
        liveness.adopt(tuple(config["owner"]))  # type: ignore[arg-type]
    if config.get("entrypoint"):
        environment.adopt_entrypoint(config["entrypoint"])
    tracker = LocalTracker(config["url"], artifact_root=config.get("artifact_root"))
    answers.write(pickle.dumps(_interface(tracker), protocol=PROTOCOL))
    answers.flush()
    try:
        while True:
            try:
                request = pickle.load(requests)
            except EOFError:
                return  # the process it serves closed the pipe, or died
            answers.write(_answer(tracker, request))
            answers.flush()
    finally:
        tracker.close()


def main() -> None:
    # Ctrl-C and a launcher's SIGTERM reach the whole process group; the training process then writes
    # its run's end (KILLED) through this process, which leaves only when that process closes the pipe.
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    try:
        os.nice(10)  # tracking yields the CPU to training: on two cores its start no longer slows the first steps
    except (AttributeError, OSError):
        pass
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print cannot corrupt the answers
    serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    main()
