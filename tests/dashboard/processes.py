"""`diary ui` as a real process on a free loopback port, for the HTTP and browser tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def diary_ui(database: Path | str, log: Path) -> Iterator[str]:
    """Run `diary ui DATABASE --port 0` and yield its base URL; stopped (and waited for) on exit."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "diary_integrations.cli", "ui", str(database), "--port", "0"],
            stdout=subprocess.PIPE, stderr=err, text=True, env=env,
        )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if "listening on " not in line:
            process.kill()
            raise RuntimeError(f"diary ui did not start: {line!r}\n{log.read_text()}")
        yield line.rsplit(" ", 1)[-1].strip().rstrip("/")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
