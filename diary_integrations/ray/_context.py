"""How a process inside a Ray Tune trial learns the trial's child iteration.

The driver's callback publishes `{iteration_id, name}` in Ray's cluster key-value store (the GCS every
node of the cluster reads) under the experiment's name and the trial's id. In `on_trial_start`, which
Tune calls before it asks the trial's actor to train, it writes "pending" there at once (the child is
created on the callback's own thread): a run opened in the trial meanwhile waits for the id (at most
`WAIT_SECONDS`), on any node. Nothing else is passed: the trial process checks the id against its own tracker (the
iteration must be there, with the trial's name) before nesting under it. `ray.experimental`'s
internal_kv is what Ray's own libraries use for this; it is imported only where Ray already is.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

NAMESPACE = "diary_integrations"


def _key(experiment_name: str, trial_id: str) -> bytes:
    return f"trial:{experiment_name}:{trial_id}".encode()


PENDING = b"pending"
WAIT_SECONDS = 30.0  # how long a trial waits for the child the driver is creating for it


def announce_pending(experiment_name: str, trial_id: str) -> None:
    """The trial is starting and its child is being created (driver side, on Tune's thread, before the
    trial's first line runs): a run opened in the trial meanwhile waits for the id."""
    from ray.experimental import internal_kv

    internal_kv._internal_kv_put(_key(experiment_name, trial_id), PENDING, overwrite=True, namespace=NAMESPACE)


def publish(experiment_name: str, trial_id: str, iteration_id: int, name: str) -> None:
    """Make the trial's child known to the trial's processes (driver side)."""
    from ray.experimental import internal_kv

    value = json.dumps({"iteration_id": iteration_id, "name": name}).encode()
    internal_kv._internal_kv_put(_key(experiment_name, trial_id), value, overwrite=True, namespace=NAMESPACE)


def withdraw(experiment_name: str, trial_id: str) -> None:
    """The trial ended: its entry goes (driver side)."""
    from ray.experimental import internal_kv

    internal_kv._internal_kv_del(_key(experiment_name, trial_id), namespace=NAMESPACE)


def current_trial() -> dict[str, Any] | None:
    """The published child of the Tune trial this process runs in, or None (not in a trial, Ray not
    imported, nothing published)."""
    if "ray" not in sys.modules:
        return None
    ray = sys.modules["ray"]
    if not ray.is_initialized():
        return None
    from ray.train._internal import session

    current = session.get_session()
    trial_id = getattr(current, "trial_id", None) if current is not None else None
    if not trial_id:
        return None
    from ray.experimental import internal_kv

    key = _key(current.experiment_name, trial_id)
    deadline = time.monotonic() + WAIT_SECONDS
    raw = internal_kv._internal_kv_get(key, namespace=NAMESPACE)
    while raw == PENDING and time.monotonic() < deadline:
        time.sleep(0.05)
        raw = internal_kv._internal_kv_get(key, namespace=NAMESPACE)
    return None if raw is None or raw == PENDING else json.loads(raw)
