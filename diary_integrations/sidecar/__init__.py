"""SidecarTracker: a LocalTracker that runs in a process of its own beside the training process.

A training process that writes to a database through an in-process LocalTracker pays for SQLAlchemy
there: its import, the schema and the full garbage collection that so many new objects set off, about
0.5 s of CPU on the interpreter lock the training loop needs. W&B runs its writer as a service process
for the same reason. This tracker starts `python -m diary_integrations.sidecar` on first use and sends
it each call (method name, arguments, idempotency key) as a pickle over a pipe; the sidecar applies it
with a LocalTracker and sends back the value or the error. Only this module and the standard library
are imported here.

The promise holds as it does in process: a call returns once the sidecar has committed it. The
sidecar's runs live by the process it serves (embedded liveness records that process, not the
sidecar), and it leaves when that process closes its pipe, so a SIGKILLed training run is found KILLED
as before. Ctrl-C and SIGTERM sent to the whole process group do not stop the sidecar: the training
process still writes its run's end through it. A sidecar that dies by itself is started again, and the
call that was in flight is sent again only when that is safe: a read, a heartbeat, or a write the
LocalTracker applies once per idempotency key (every such call carries a key for that reason).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable
from typing import IO, Any

from ..tracker.errors import TransportError
from ..tracker.finding import FindsOrCreates
from ..tracker.keys import current, new_key
from ..tracker.lifecycle import Heartbeat, OpensIterationRuns

__all__ = ["SidecarTracker", "usable_for"]

RESTARTS = 3  # a call is sent to at most this many new sidecars: one that keeps dying is reported
STOP_TIMEOUT = 10.0  # how long `close` waits for the sidecar to finish and exit
PROTOCOL = pickle.HIGHEST_PROTOCOL


def usable_for(target: str) -> bool:
    """A sidecar can hold a tracker for this URI: a database other than an in-memory SQLite one (which
    would live and die in the sidecar), from an interpreter that can start another."""
    if target.startswith(("http://", "https://")) or not sys.executable:
        return False
    return ":memory:" not in target and not target.rstrip().endswith("sqlite://")


def _absolute(target: str) -> str:
    """A relative SQLite path made absolute now: a sidecar started after a `chdir` finds the same file."""
    prefix = "sqlite:///" if target.startswith("sqlite:///") else "" if "://" not in target else None
    if prefix is None:
        return target
    path = target[len(prefix):]
    if not path or path.startswith("file:") or "?" in path:
        return target
    return prefix + os.path.abspath(os.path.expanduser(path))


class _Unsent(Exception):
    """The request could not be written: the sidecar died before it read it, so it was not applied."""


class _Process:
    """One running sidecar and its two pipes; `ask` sends a pickled request and reads the answer."""

    def __init__(self, target: str, artifact_root: str | None) -> None:
        from ..tracker import environment, liveness

        config = {
            "url": target,
            "artifact_root": artifact_root,
            "owner": liveness.own_process(),
            "entrypoint": environment.entrypoint(),
        }
        package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "diary_integrations.sidecar"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True,
        )
        self.owner_pid = os.getpid()
        self._requests: IO[bytes] = self.popen.stdin  # type: ignore[assignment]
        self._answers: IO[bytes] = self.popen.stdout  # type: ignore[assignment]
        try:
            # On the pipe, not the command line, where `ps` would show a database URL's password.
            self._requests.write(pickle.dumps(config, protocol=PROTOCOL))
            self._requests.flush()
            hello = pickle.load(self._answers)
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            self.stop(wait=True)
            raise TransportError(
                f"the diary sidecar process for {target} could not start (exit status {self.popen.returncode}); "
                "its error is above on stderr"
            ) from exc
        self.url: str = hello["url"]
        self.methods: frozenset[str] = frozenset(hello["methods"])
        self.repeatable: frozenset[str] = frozenset(hello["repeatable"])
        self.keyed: frozenset[str] = frozenset(hello["keyed"])
        _running_here.add(self)

    def ask(self, request: bytes) -> tuple[bool, Any]:
        try:
            self._requests.write(request)
            self._requests.flush()
        except OSError as exc:  # a sidecar that is gone reads nothing, let alone applies it
            raise _Unsent from exc
        return pickle.load(self._answers)

    def stop(self, *, wait: bool) -> None:
        """Close its pipe: it finishes the call in hand (there is none between calls) and exits."""
        for pipe in (self.popen.stdin, self.popen.stdout):
            try:
                pipe.close()  # type: ignore[union-attr]
            except OSError:
                pass
        if wait:
            try:
                self.popen.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


_running_here: weakref.WeakSet[_Process] = weakref.WeakSet()


def _let_go_in_child() -> None:
    """A forked child (a DataLoader worker) drops its copies of the parent's pipes: it must never write
    on them, and holding them open would keep the sidecar waiting after the parent closed its own. They
    are pointed at /dev/null rather than closed, so the file objects' own close later harms nothing."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for process in list(_running_here):
        for pipe in (process.popen.stdin, process.popen.stdout):
            try:
                os.dup2(devnull, pipe.fileno())  # type: ignore[union-attr]
            except (OSError, ValueError):
                pass
    os.close(devnull)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_let_go_in_child)


def _stop_quietly(holder: dict[str, _Process | None]) -> None:
    """A garbage-collected tracker lets its sidecar go (without waiting for it)."""
    process = holder.get("process")
    if process is not None and process.owner_pid == os.getpid():
        process.stop(wait=False)


class SidecarTracker(FindsOrCreates, OpensIterationRuns):
    """The Tracker protocol, each call applied by a LocalTracker in a sidecar process (see the module's
    docstring). It pickles to its URL (a DDP worker or a deep copy starts its own sidecar); after
    `close` or a fork the next call starts a new sidecar."""

    def __init__(self, url: str | os.PathLike[str], *, artifact_root: str | os.PathLike[str] | None = None) -> None:
        self._target = _absolute(os.fspath(url))
        self._artifact_root = None if artifact_root is None else os.fspath(artifact_root)
        self._lock = threading.Lock()  # one call at a time on the pipe
        self._holder: dict[str, _Process | None] = {"process": None}
        finalizer = weakref.finalize(self, _stop_quietly, self._holder)
        finalizer.atexit = False  # at exit the pipe closes anyway, after the run's end went through it

    def __repr__(self) -> str:
        return f"SidecarTracker({self._target!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._target,), {"_artifact_root": self._artifact_root})

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._artifact_root = state["_artifact_root"]

    @property
    def url(self) -> str:
        """The database's URL as the LocalTracker normalised it (an absolute SQLite path)."""
        with self._lock:
            return self._running().url

    @property
    def pid(self) -> int | None:
        """The running sidecar's process id (None before the first call and after `close`); read under the
        lock, so never in the middle of replacing a sidecar that died."""
        with self._lock:
            process = self._holder["process"]
        return None if process is None or process.owner_pid != os.getpid() else process.popen.pid

    def close(self, *, wait: bool = False) -> None:
        """Let the sidecar go: every call sent was answered, so applied, and it exits on its own once its
        pipe closes (`wait` waits for that). A later call starts another. Its heartbeat stops too: a
        beat after this would start a new sidecar for a tracker its user let go."""
        Heartbeat.stop_for(self)
        with self._lock:
            process, self._holder["process"] = self._holder["process"], None
        if process is not None and process.owner_pid == os.getpid():
            process.stop(wait=wait)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        with self._lock:
            methods = self._running().methods
        if name not in methods:
            raise AttributeError(f"{type(self).__name__} has no method {name!r}")

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._call(name, args, kwargs)

        call.__name__ = name
        return call

    # -- the pipe ---------------------------------------------------------------------------------

    def _running(self) -> _Process:
        """The sidecar of this process, started if there is none (caller holds the lock)."""
        process = self._holder["process"]
        if process is None or process.owner_pid != os.getpid():
            # A forked child never writes on its parent's pipes: it gets a sidecar of its own.
            process = self._holder["process"] = _Process(self._target, self._artifact_root)
        return process

    def _call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        with self._lock:
            process = self._running()
            key = current.get()
            if key is None and name in process.keyed:
                key = new_key()  # so that a call sent again to a restarted sidecar is applied once
            request = pickle.dumps((name, args, kwargs, key), protocol=PROTOCOL)
            for attempt in range(RESTARTS + 1):
                try:
                    ok, value = process.ask(request)
                    break
                except _Unsent as exc:
                    process = self._lost(process, name, exc, again=attempt < RESTARTS, applied=False)
                except (OSError, EOFError, pickle.UnpicklingError) as exc:
                    process = self._lost(process, name, exc, again=attempt < RESTARTS, applied=None)
        if ok:
            return value
        raise value

    def _lost(
        self, process: _Process, name: str, exc: BaseException, *, again: bool, applied: bool | None
    ) -> _Process:
        """The sidecar died before reading `name` (`applied=False`) or while applying it (None: maybe):
        start another and send the call again when that is safe."""
        process.stop(wait=True)
        self._holder["process"] = None
        status = process.popen.returncode
        if applied is None and name not in process.repeatable:
            raise TransportError(
                f"the diary sidecar process {process.popen.pid} exited (status {status}) during {name}, which "
                "may or may not have been applied; the next call starts another"
            ) from exc
        if not again:
            raise TransportError(
                f"the diary sidecar process exited (status {status}) {RESTARTS + 1} times during {name}, which "
                "was not applied"
            ) from exc
        return self._running()
