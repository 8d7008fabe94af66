"""Fold results written by the workers themselves, when they cannot reach the main process.

On a cluster (`joblib.parallel_backend("dask")` or `("ray")` with workers on other hosts) the event
sink's local socket is out of reach. With a tracker that every host can reach (a tracking server, or
PostgreSQL), a worker then writes what it would have sent: a candidate's child at its first fold's start
(RUNNING, beaten while the worker runs its folds), each fold's `fold_time`, and a failed fold's
exception. The main process finds those children again at the end and ends them from `cv_results_`.

Exactly one child per candidate, whoever writes first: every child of such a search (main process or
worker) is created under an idempotency key made of the fit's root id, the driver and the candidate, so
the tracker applies the first creation and answers every other with the same iteration.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from dataclasses import dataclass
from typing import Any

from ..tracker.keys import using_key
from ..tracker.lifecycle import Heartbeat
from ..tracker.records import NewIteration
from ._results import exception_line

FORCE_ENV = "DIARY_SKLEARN_DIRECT"  # "1": workers write to the tracker even when the socket is reachable
SHARED_SCHEMES = ("http://", "https://", "postgresql")


def shared_tracker(uri: str) -> bool:
    """Whether workers on other hosts can write to this tracker (a server or PostgreSQL, not a file)."""
    return uri.startswith(SHARED_SCHEMES)


def forced() -> bool:
    return os.environ.get(FORCE_ENV, "").strip() == "1"


def this_host() -> str:
    return socket.gethostname()


def child_key(root: Any, driver_id: int, halving_iter: int, candidate: int) -> str:
    digest = hashlib.sha256(f"{root}\x1f{driver_id}\x1f{halving_iter}\x1f{candidate}".encode()).hexdigest()[:40]
    return f"diary-sklearn-child:{digest}"


def create_child(tracker: Any, experiment_id: int, driver_id: int, key: str, spec: NewIteration) -> int:
    """The candidate's child, created once for all the processes that ask (the first asker creates it)."""
    with using_key(key):
        return tracker.create_iteration(
            experiment_id,
            parent_iteration_id=driver_id,
            notes=spec.notes,
            parameters=spec.parameters,
            name=spec.name,
            snapshot=False,
        ).id


@dataclass(frozen=True)
class Route:
    """Where a worker's copy of the callback sends a search's fold events, and what it needs to write
    them itself: the main process's host (a socket is only reachable there) and the search's ids."""

    address: Any
    authkey: bytes
    host: str
    root: Any
    experiment_id: int
    driver_id: int
    direct: bool  # the tracker is one workers can write to


class DirectWriter:
    """A worker process's fold writes for the searches whose main process it cannot reach."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.children: dict[tuple[Any, int, int], int] = {}
        self.starts: dict[tuple[Any, int, int, int], float] = {}
        self.in_flight: dict[int, int] = {}  # child -> folds running here

    def event(self, tracker: Any, route: Route, spec: NewIteration, event: tuple[Any, ...]) -> None:
        kind, it, cand, fold, when, error = event
        key = (route.root, it, cand)
        with self.lock:
            child = self.children.get(key)
        if child is None:
            child = create_child(
                tracker, route.experiment_id, route.driver_id, child_key(route.root, route.driver_id, it, cand), spec
            )
            with self.lock:
                self.children[key] = child
        if kind == "begin":
            with self.lock:
                self.starts[(*key, fold)] = when
                self.in_flight[child] = self.in_flight.get(child, 0) + 1
            Heartbeat.of(tracker).add(child)
            return
        with self.lock:
            start = self.starts.pop((*key, fold), None)
            left = self.in_flight[child] = max(self.in_flight.get(child, 1) - 1, 0)
        try:
            if kind == "end" and start is not None:
                with using_key(f"{child_key(route.root, route.driver_id, it, cand)}:t{fold}"):
                    tracker.log_metric_points(child, [("fold_time", when - start, fold)])
            if kind == "end" and error:
                # The main process reads it back at the end for the folds cv_results_ shows as failed.
                tracker.update_iteration(child, error_message=exception_line(error)[:2000], traceback=error)
        finally:
            if not left:
                Heartbeat.of(tracker).discard(child)


WRITER = DirectWriter()
