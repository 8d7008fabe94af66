"""A Ray Tune experiment over two Ray nodes for the scale-out tests, run on the head's host:

    python ray_nodes.py RAY_ADDRESS URI STORAGE

Four trials; each asks for one CPU and the custom resource of the node it must run on (`node_a` is the
head's, `node_b` the worker's: even x on the head, odd x on the worker), so both nodes run trials
whatever Ray's scheduler prefers. Trial x=3 raises on the worker node. Each trial reports the node it
saw and the child iteration the driver's DiaryCallback published for it (read through Ray's cluster
store, from whichever node the trial runs on). Credentials for the tracking server come from
$DIARY_USERNAME and $DIARY_PASSWORD, as on a cluster.
"""

from __future__ import annotations

import sys

import ray
from ray import tune

FAILING = 3


def node_of(config: dict) -> str:
    return "node_a" if config["x"] % 2 == 0 else "node_b"


def trainable(config: dict) -> None:
    from diary_integrations.ray import trial_iteration_id

    child = trial_iteration_id()
    if config["x"] == FAILING:
        raise ValueError(f"diverged at x={config['x']} on {ray.util.get_node_ip_address()}")
    for i in range(1, 4):
        tune.report({"loss": config["x"] + 1.0 / i, "child": float(child or 0)})


def main() -> None:
    from diary_integrations.ray import DiaryCallback

    address, uri, storage = sys.argv[1:4]
    ray.init(address=address, log_to_driver=False, configure_logging=False)
    placed = tune.with_resources(trainable, lambda config: tune.PlacementGroupFactory([{"CPU": 1, node_of(config): 1}]))
    callback = DiaryCallback("Multi-node", "Ray nodes", uri=uri)
    tuner = tune.Tuner(
        placed,
        param_space={"x": tune.grid_search([0, 1, 2, 3])},
        tune_config=tune.TuneConfig(metric="loss", mode="min", reuse_actors=True),
        run_config=tune.RunConfig(name="nodes", storage_path=storage, verbose=0, callbacks=[callback]),
    )
    results = tuner.fit()
    print("DRIVER", callback.driver_iteration_id, "BEST", results.get_best_result().config["x"], flush=True)


if __name__ == "__main__":
    main()
