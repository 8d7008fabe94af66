"""One client of the server cluster test: run with `python cluster_client.py INDEX EXPERIMENT_ID URL...`.

Credentials come from $DIARY_USERNAME and $DIARY_PASSWORD (as a sweep worker gets them). The client
opens its run on server INDEX % n, writes single points there and a batch through the next server,
and the run is ended by a third: what a load balancer spreading one client's requests would do.
Prints `ITERATION <id>` when done.
"""

from __future__ import annotations

import sys

from diary_integrations import connect

SINGLE_POINTS = 40
BATCH_POINTS = 400


def main() -> None:
    index, experiment_id, urls = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    first, second, third = (connect(urls[(index + k) % len(urls)]) for k in range(3))
    with first.with_iteration(experiment_id, name=f"client {index}") as run:
        for step in range(SINGLE_POINTS):
            first.log_metrics(run.id, {"loss": 1.0 / (step + 1)}, step=step)
        second.log_metric_points(run.id, [("acc", step / BATCH_POINTS, step) for step in range(BATCH_POINTS)])
        third.log_parameters(run.id, {"client": index})
    print(f"ITERATION {run.id}", flush=True)


if __name__ == "__main__":
    main()
