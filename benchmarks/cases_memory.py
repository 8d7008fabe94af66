"""Memory under a backlog: DiaryLogger's buffer is bounded (back-pressure, never a silent drop), so peak
RSS barely moves between a small and a huge run. Each size runs in a fresh process for a clean peak."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap

from .harness import Case, Comparison

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    from diary_integrations import LocalTracker
    from diary_integrations.lightning import DiaryLogger
    points, directory = int(sys.argv[1]), sys.argv[2]
    url = f"sqlite:///{directory}/diary.db"
    logger = DiaryLogger(project="bench", experiment="backlog", uri=url, save_dir=directory)
    start = time.perf_counter()
    for step in range(points):
        logger.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    logger.finalize("success")
    elapsed = time.perf_counter() - start
    written = len(LocalTracker(url).get_metrics(logger.iteration_id, key="loss", offset=max(points - 1, 0)))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mb": peak, "seconds": elapsed, "last_point_found": written}))
    """
)


def _run(points: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(points), tempfile.mkdtemp(prefix="diary-bench-mem-")],
        capture_output=True, text=True, check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def logger_backlog(quick: bool) -> Case:
    small, large = (1_000, 20_000) if quick else (10_000, 10_000_000)
    notes: list[str] = []

    def measure(points: int):  # type: ignore[no-untyped-def]
        def variant() -> float:
            result = _run(points)
            notes.append(
                f"{points:,} points: peak RSS {result['peak_mb']:.0f} MiB, {result['seconds']:.1f} s "
                f"({points / result['seconds']:,.0f} points/s through log_metrics), last point stored: "
                f"{bool(result['last_point_found'])}"
            )
            return result["peak_mb"]

        return variant

    return Case(
        name="Memory: DiaryLogger under a backlog",
        description=(
            f"One process logs {large:,} metric points through `DiaryLogger.log_metrics` as fast as it can (far "
            f"faster than a training loop), against the same for {small:,} points; peak resident memory of each "
            "process. The writer's queue is bounded, so the producer waits instead of buffering without limit."
        ),
        unit="MiB",
        variants={f"{small:,} points": measure(small), f"{large:,} points": measure(large)},
        comparisons=[
            Comparison("peak RSS, large / small run", f"{large:,} points", f"{small:,} points", 1.25, "lower"),
        ],
        repeats=1,
        notes=notes,
    )


CASES = [logger_backlog]
