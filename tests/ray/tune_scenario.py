"""Trainables for the Ray Tune tests (imported by Ray's workers), and a driver to SIGKILL:

    python tune_scenario.py DB STORAGE RAY_ADDRESS fit

runs a 4-trial experiment tracked by DiaryCallback on the Ray at RAY_ADDRESS."""

from __future__ import annotations

import os
import signal
import sys
import time

from ray import tune


def asha_trainable(config: dict) -> None:
    """Twelve trials under ASHA: x in (3, 7) raise; a larger x gives a worse loss, so ASHA stops it."""
    if config["x"] in (3, 7):
        raise ValueError(f"diverged at x={config['x']}")
    for i in range(1, 9):
        tune.report({"loss": config["x"] + 1.0 / i, "nested": {"acc": 1.0 - config["x"] / 20}})


def logger_trainable(config: dict) -> None:
    """A trial that tracks itself with DiaryLogger (x=0), or whose worker is SIGKILLed (x=1)."""
    if config["x"] == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    from diary_integrations.lightning import DiaryLogger

    logger = DiaryLogger("P", "Tune", uri=config["uri"], sidecar=False, open_in_background=False)
    logger.log_metrics({"inner": 1.5}, step=0)
    logger.finalize("success")
    tune.report({"loss": 0.5, "run": logger.iteration_id})


def slow_trainable(config: dict) -> None:
    """Five reports 0.4 s apart: slow enough for a driver to be killed mid-experiment."""
    for i in range(1, 6):
        time.sleep(0.4)
        tune.report({"loss": config["x"] * 10.0 + i})


def steady_trainable(config: dict) -> None:
    """Twelve reports 0.25 s apart: a server can be killed and restarted while they come."""
    for i in range(1, 13):
        time.sleep(0.25)
        tune.report({"loss": config["x"] * 10.0 + 1.0 / i})


def gated_trainable(config: dict, gate: str) -> None:
    """steady_trainable's twelve reports, holding after the third until the file `gate` exists: the test
    acts while every trial still runs, however late a loaded machine starts the second one."""
    deadline = time.monotonic() + 120
    for i in range(1, 13):
        while i == 4 and not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.25)
        tune.report({"loss": config["x"] * 10.0 + 1.0 / i})


def run(db: str, storage: str, address: str, mode: str) -> None:
    import ray

    from diary_integrations.ray import DiaryCallback

    assert mode == "fit"
    ray.init(address=address, log_to_driver=False, configure_logging=False)
    tuner = tune.Tuner(
        slow_trainable,
        param_space={"x": tune.grid_search(list(range(4)))},
        tune_config=tune.TuneConfig(metric="loss", mode="min", reuse_actors=True),
        run_config=tune.RunConfig(name="exp", storage_path=storage, verbose=0,
                                  callbacks=[DiaryCallback("P", "Tune", uri=db)]),
    )
    results = tuner.fit()
    print("best", results.get_best_result().config, flush=True)


if __name__ == "__main__":
    run(*sys.argv[1:5])
