"""One Ray Tune experiment in a fresh process: `python -m benchmarks.ray_run CALLBACK DIR TRIALS`
(from the repository root; CALLBACK is none, diary or mlflow). A local Ray with 2 CPUs runs TRIALS
trials of a trivial trainable (3 reports each); prints one JSON line with the seconds `Tuner.fit` took."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings


def trivial(config: dict) -> None:
    from ray import tune

    for i in range(1, 4):
        tune.report({"loss": config["x"] / i})


def _callbacks(kind: str, directory: str) -> list:
    if kind == "none":
        return []
    if kind == "diary":
        from diary_integrations.ray import DiaryCallback

        return [DiaryCallback("bench", "tune", uri=f"sqlite:///{directory}/diary.db")]
    if kind == "mlflow":
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        return [MLflowLoggerCallback(tracking_uri=f"sqlite:///{directory}/mlflow.db", experiment_name="bench")]
    raise SystemExit(f"unknown callback {kind!r}")


def main(kind: str, directory: str, trials: int) -> None:
    warnings.filterwarnings("ignore")
    logging.getLogger("ray").setLevel(logging.ERROR)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray
    from ray import tune

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    tuner = tune.Tuner(
        trivial,
        param_space={"x": tune.grid_search(list(range(trials)))},
        tune_config=tune.TuneConfig(metric="loss", mode="min", reuse_actors=True),
        run_config=tune.RunConfig(name="bench", storage_path=os.path.join(directory, "ray"), verbose=0,
                                  callbacks=_callbacks(kind, directory)),
    )
    start = time.perf_counter()
    results = tuner.fit()
    elapsed = time.perf_counter() - start
    assert len(results) == trials and not results.errors, results.errors
    print(json.dumps({"fit": elapsed}), flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
