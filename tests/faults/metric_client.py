"""One client process of the exactly-once drill: logs POINTS points to ITERATION through `connect()`
and a MetricWriter, a batch at a time, while the server is killed and restarted under it. Prints what
the writer counted as written and dropped, as JSON."""

from __future__ import annotations

import json
import sys
import time

from diary_integrations import connect
from diary_integrations.writer import MetricWriter


def main(url: str, iteration_id: int, points: int, batch: int, seconds: float) -> None:
    tracker = connect(url)
    writer = MetricWriter(tracker, batch_size=batch, interval=0.05, retries=8)
    pause = seconds / points
    for step in range(points):
        writer.add(iteration_id, "loss", 1.0 / (step + 1), step, time.time())
        if step % batch == 0:
            time.sleep(pause * batch)
    done = writer.close(timeout=120)
    print(json.dumps({"done": done, "written": writer.written, "journaled": writer.journaled,
                      "dropped": writer.dropped, "errors": writer.errors}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
