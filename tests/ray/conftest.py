"""One local Ray (2 CPUs) for the module's Tune experiments: starting Ray costs seconds, and every test
runs its own Tuner against it, with its own database and storage directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("ray.tune", reason="the Ray Tune tests need the [ray] extra")

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """Ray on this machine; its workers import the trainables from tune_scenario.py (this directory on
    their PYTHONPATH). Yields the address another driver process joins with `ray.init(address=...)`."""
    import ray

    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), saved) if p)
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
