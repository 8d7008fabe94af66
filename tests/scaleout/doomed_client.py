"""A client that opens runs, keeps them beating, and waits to be SIGKILLed: `python doomed_client.py
EXPERIMENT_ID COUNT URL`. Prints `RUNNING <id> ...` once its runs are open."""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack

from diary_integrations import connect


def main() -> None:
    experiment_id, count, url = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    tracker = connect(url)
    with ExitStack() as stack:
        runs = [stack.enter_context(tracker.with_iteration(experiment_id, name=f"doomed {i}")) for i in range(count)]
        print("RUNNING " + " ".join(str(run.id) for run in runs), flush=True)
        time.sleep(3600)


if __name__ == "__main__":
    main()
