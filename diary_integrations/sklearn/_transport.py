"""Fold events from worker processes to the process that runs the search.

With `n_jobs > 1`, scikit-learn runs the fold hooks in loky workers, each with a pickled copy of the
callback. Workers never write to the tracker: they send small events over an authenticated local
socket (a UNIX socket, a named pipe on Windows) to the main process, which alone creates children,
so two workers can never both create the same candidate's child. A worker may also `ask` (an event
whose kind is "ask"): the main process answers on the same connection (the id of a candidate's child, for
a booster fit inside the worker's fold to nest under).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from multiprocessing.connection import Client, Connection, Listener
from typing import Any

log = logging.getLogger("diary_integrations.sklearn")

POLL_SECONDS = 0.2  # how soon a reader thread notices its sink closed
ASK = "ask"  # the kind of an event that waits for the main process's answer
ANSWER_TIMEOUT = 90.0  # how long a worker waits for it (the main process waits at most 60 s for a child)


class EventSink:
    """The main process's end: accepts worker connections and hands each event to `handler`; what the
    handler returns for an `ASK` event is sent back to the asking worker."""

    def __init__(self, handler: Callable[[tuple[Any, ...]], None]) -> None:
        self.handler = handler
        self.authkey = os.urandom(32)
        self.listener = Listener(authkey=self.authkey)
        self.address = self.listener.address
        self.closed = False
        threading.Thread(target=self._accept, name="diary-sklearn-accept", daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn = self.listener.accept()
            except OSError:  # closed, or a peer without the key
                if self.closed:
                    return
                continue
            if self.closed:
                conn.close()
                return
            threading.Thread(target=self._serve, args=(conn,), name="diary-sklearn-events", daemon=True).start()

    def _serve(self, conn: Connection) -> None:
        with conn:
            while not self.closed:
                try:
                    if not conn.poll(POLL_SECONDS):
                        continue
                    event = conn.recv()
                except (EOFError, OSError):
                    return
                answer = None
                try:
                    answer = self.handler(event)
                except Exception as exc:  # one bad event must not stop the others
                    log.warning("diary: could not record a fold event: %s", exc)
                if event and event[0] == ASK:
                    try:
                        conn.send(answer)  # the worker waits for it, even when it is None
                    except OSError:
                        return

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:  # accept() does not notice a close from another thread: knock once to wake it
            Client(self.address, authkey=self.authkey).close()
        except OSError:
            pass
        self.listener.close()


_senders: dict[Any, Connection] = {}
_senders_lock = threading.Lock()


def _connection(address: Any, authkey: bytes) -> Connection:
    conn = _senders.get(address)
    if conn is None:
        for old in _senders.values():  # a new search: its predecessor's sink is gone
            old.close()
        _senders.clear()
        conn = _senders[address] = Client(address, authkey=authkey)
    return conn


def send(address: Any, authkey: bytes, event: tuple[Any, ...]) -> None:
    """Send one event from a worker, over a connection kept per process (one per search at a time)."""
    with _senders_lock:
        conn = _connection(address, authkey)
        try:
            conn.send(event)
        except OSError:
            _senders.pop(address, None)
            raise


def ask(address: Any, authkey: bytes, question: tuple[Any, ...]) -> Any:
    """Send `(ASK, *question)` from a worker and wait for the main process's answer (None when none came
    within `ANSWER_TIMEOUT`). The connection is held meanwhile, so no other event's bytes interleave."""
    with _senders_lock:
        conn = _connection(address, authkey)
        try:
            conn.send((ASK, *question))
            if not conn.poll(ANSWER_TIMEOUT):
                # A late answer would be read as the next one: this connection is done with.
                _senders.pop(address, None)
                conn.close()
                return None
            return conn.recv()
        except (EOFError, OSError):
            _senders.pop(address, None)
            raise
