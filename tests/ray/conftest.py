"""One local Ray (2 CPUs) for the module's Tune experiments: starting Ray costs seconds, and every test
runs its own Tuner against it, with its own database and storage directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from local_ray import local_ray

pytest.importorskip("ray.tune", reason="the Ray Tune tests need the [ray] extra")

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """Ray on this machine; its workers import the trainables from tune_scenario.py (this directory on
    their PYTHONPATH). Yields the address another driver process joins with `ray.init(address=...)`."""
    with local_ray(HERE) as address:
        yield address
