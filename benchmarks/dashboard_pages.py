"""`python -m benchmarks.dashboard_pages`: how long the dashboard takes to render real-sized pages.

An iteration with 100,000 points in a metric, and a driver with 1,000 children (each with 3 parameters
and a 200-step curve), in a fresh SQLite file; each page is rendered a few times through the ASGI app
and the median wall time and payload size are printed. A measurement, not a test.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from diary_integrations import ExperimentStatus, LocalTracker
from diary_integrations.dashboard import create_dashboard

POINTS = 100_000
CHILDREN = 1_000
CHILD_STEPS = 200
RUNS = 5


def seed(tracker: LocalTracker) -> tuple[int, int]:
    project, _ = tracker.create_project("bench")
    experiment, _ = tracker.create_experiment(project, ExperimentStatus.IN_PROGRESS, "dashboard")
    long_run, _ = tracker.create_iteration(experiment, snapshot=False)
    tracker.log_metric_points(long_run, [("loss", 1.0 / (1 + s / 1000) + (s % 97) / 1e4, s) for s in range(POINTS)])
    tracker.end_iteration(long_run)
    driver, _ = tracker.create_iteration(experiment, snapshot=False)
    for n in range(CHILDREN):
        child, _ = tracker.create_iteration(experiment, parent_iteration_id=driver, snapshot=False)
        tracker.log_parameters(child, {"lr": 10 ** -(1 + n % 4), "depth": n % 12, "seed": n})
        tracker.log_metric_points(child, [("loss", 1.0 / (1 + s * (1 + n % 7) / 50), s) for s in range(CHILD_STEPS)]
                                  + [("accuracy", 0.5 + (n % 113) / 300, CHILD_STEPS - 1)])
        tracker.end_iteration(child)
    tracker.end_iteration(driver)
    return long_run, driver


def measure(client: TestClient, url: str) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(RUNS):
        start = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - start)
        assert response.status_code == 200, response.text[:300]
        size = len(response.content)
    return statistics.median(times), size


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        tracker = LocalTracker(Path(folder) / "bench.db")
        start = time.perf_counter()
        long_run, driver = seed(tracker)
        print(f"seeded in {time.perf_counter() - start:.1f}s", file=sys.stderr)
        with TestClient(create_dashboard(tracker)) as client:
            pages = {
                f"iteration with {POINTS:,} points": f"/ui/iterations/{long_run}",
                f"sweep of {CHILDREN:,} children": f"/ui/iterations/{driver}/sweep",
                f"sweep of {CHILDREN:,} children, live part": f"/ui/iterations/{driver}/sweep?part=live",
                f"experiment tree ({CHILDREN + 2:,} iterations)": "/ui/experiments/1",
                f"child page (sidebar of {CHILDREN + 2:,})": f"/ui/iterations/{driver + 1}",
            }
            print("| page | median of 5 | payload |\n|---|---|---|")
            for name, url in pages.items():
                seconds, size = measure(client, url)
                print(f"| {name} | {seconds * 1000:.0f} ms | {size / 1024:.0f} KiB |")
        tracker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
