"""Trainables for the Ray Tune system-metrics test (imported by Ray's workers)."""

from __future__ import annotations

import time

from ray import tune

BALLAST_MIB = 200


def ballast_trainable(config: dict) -> None:
    """x=1 holds BALLAST_MIB of memory the whole trial, x=0 none; both report for about 3 s, so a sampler
    reading every half second sees several readings of each trial's own process."""
    ballast = bytearray(BALLAST_MIB * 1024 * 1024) if config["x"] == 1 else b""
    for i in range(1, 7):
        time.sleep(0.5)
        tune.report({"loss": float(config["x"] + i), "held": len(ballast)})
