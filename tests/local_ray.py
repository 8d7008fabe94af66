"""A local Ray (2 CPUs) for a test module, whose workers can import the module's helpers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def local_ray(importable: Path) -> Iterator[str]:
    """Ray on this machine, its workers started with `importable` on their PYTHONPATH (they unpickle
    what the test defined there); yields the address another driver process joins with
    `ray.init(address=...)`. Shut down, and PYTHONPATH restored, on leaving."""
    import ray

    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(importable), saved) if p)
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
