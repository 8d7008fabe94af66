"""DearDiary.jl's "Child iterations" guide, transcribed into Python line for line.

Each section below is a section of the page (../shared/reference/deardiary-child-iterations.txt in the
project's steering repository). Julia's `do` blocks are `with` blocks or the call form
`with_iteration(...)(body)`, arrays are 0-based, `@async` workers are threads; everything else is the
page's own calls in the page's own argument order (`create_project(user.id, name)`,
`with_iteration(client, ...)`, `create_parameter(client, ...)`). Each section checks the value the page
shows and prints it the way the REPL does.

The embedded part writes a fresh database (a temporary directory, or the path given); the
distributed-worker part starts a real `diary server` of its own on a free loopback port.

    python examples/deardiary_guide.py [DATABASE]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from diary_integrations import (
    ExperimentStatus,
    IterationStatus,
    connect,
    create_experiment,
    create_iteration,
    create_metric,
    create_parameter,
    create_project,
    delete_iteration,
    get_child_iterations,
    get_iteration,
    get_metrics,
    get_parameters,
    get_user,
    initialize_database,
    with_iteration,
)


def show(expression: str, value: object, expected: object) -> None:
    """Print `value` as the REPL line of the page does, and check it is the value the page shows."""
    print(f">>> {expression}\n{value!r}")
    if value != expected:
        raise SystemExit(f"the guide shows {expected!r} for `{expression}`, this run gave {value!r}")


class OutOfMemoryError(Exception):
    """Stands for Julia's OutOfMemoryError, the failure the page's trial raises."""


def scaffold_a_sweep() -> tuple[int, int]:
    """Scaffold a sweep: the driver iteration, with the search space as its parameters."""
    user = get_user("default")
    project_id, _ = create_project(user.id, "Fraud detection")
    experiment_id, _ = create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "Decision-tree sweep")
    driver_id, _ = create_iteration(experiment_id)
    create_parameter(driver_id, "max_depth_range", "2..10")
    create_parameter(driver_id, "search", "grid")
    return experiment_id, driver_id


def spawn_a_child_per_trial(experiment_id: int, driver_id: int) -> None:
    """Spawn a child per trial, each pointing back at the driver."""
    trial_ids: list[int] = []
    for depth in range(2, 6):
        trial_id, _ = create_iteration(experiment_id, parent_iteration_id=driver_id)
        create_parameter(trial_id, "max_depth", depth)
        create_metric(trial_id, "accuracy", 0.90 + 0.01 * depth)
        trial_ids.append(trial_id)
    show("trial_ids", trial_ids, [2, 3, 4, 5])


def auto_finalised_trials(experiment_id: int, driver_id: int) -> tuple[int, int]:
    """Auto-finalised trials with with_iteration: one that succeeds, one that throws."""

    def trial(iter):  # noqa: A002 - the page's name for the iteration
        create_parameter(iter.id, "max_depth", 6)
        create_metric(iter.id, "accuracy", 0.972)
        return iter.id

    succeeded_id = with_iteration(experiment_id, parent_iteration_id=driver_id)(trial)
    succeeded = get_iteration(succeeded_id)
    show("(succeeded.status_id == IterationStatus.SUCCEEDED, succeeded.error_message)",
         (succeeded.status_id == IterationStatus.SUCCEEDED, succeeded.error_message), (True, ""))

    failed_id = [0]
    try:
        with with_iteration(experiment_id, parent_iteration_id=driver_id) as iter:  # noqa: A001
            failed_id[0] = iter.id
            raise OutOfMemoryError("max_depth=12 blew the heap")
    except Exception:
        pass  # The driver swallowed the exception so the rest of the sweep can carry on.
    failed = get_iteration(failed_id[0])
    show("(failed.status_id == IterationStatus.FAILED, failed.error_message)",
         (failed.status_id == IterationStatus.FAILED, failed.error_message),
         (True, "OutOfMemoryError: max_depth=12 blew the heap"))
    return succeeded_id, failed_id[0]


def walking_the_tree(driver_id: int) -> None:
    """Walking the tree: the best SUCCEEDED child, by its metric."""
    children = get_child_iterations(driver_id)
    show("len(children)", len(children), 6)
    best = max(
        filter(lambda c: c.status_id == IterationStatus.SUCCEEDED, children),
        key=lambda c: get_metrics(c.id)[0].value,
    )
    best_depth = get_parameters(best.id)[0].value
    show("best_depth", best_depth, "6")


def cascading_deletes(driver_id: int, succeeded_id: int) -> None:
    """Cascading deletes: the driver goes, its children stay as top-level iterations."""
    delete_iteration(driver_id)
    show("get_iteration(succeeded_id).parent_iteration_id is None",
         get_iteration(succeeded_id).parent_iteration_id is None, True)


def start_server(database: Path) -> tuple[subprocess.Popen[str], str]:
    """A `diary server` of this guide's own on a free loopback port, and its URL."""
    server = subprocess.Popen(
        [sys.executable, "-m", "diary_integrations.cli", "server", "--port", "0", "--uri", str(database),
         "--workers", "1"],
        stdout=subprocess.PIPE, text=True,
    )
    line = server.stdout.readline() if server.stdout else ""
    if "listening on" not in line:
        server.kill()
        raise SystemExit(f"diary server did not start: {line!r}")
    return server, line.split()[-1]


def train_partition(client, iter, worker_rank: int) -> None:  # noqa: A002 - the page's names
    """A worker's slice of training: its own loss series; worker 5 loses its partition."""
    for step in range(20):
        create_metric(client, iter.id, "loss", 1.0 / (worker_rank + step), step=step)
        if worker_rank == 5 and step == 9:
            raise RuntimeError("worker 5 lost its partition at step 9")


def distributed_worker_pattern(url: str) -> None:
    """Distributed-worker pattern: a driver over HTTP, a child per worker, each auto-finalised."""
    client = connect(url, username="default", password="default")
    user = get_user(client, "default")
    project_id, _ = create_project(client, user.id, "Fraud detection")
    experiment_id, _ = create_experiment(client, project_id, ExperimentStatus.IN_PROGRESS, "DDP run")
    started = threading.Barrier(8)  # every worker is in flight at once, as @async tasks are

    def worker(driver, worker_rank: int) -> None:
        with with_iteration(client, experiment_id, parent_iteration_id=driver.id) as iter:  # noqa: A001
            create_parameter(client, iter.id, "worker_rank", worker_rank)
            started.wait(timeout=60)
            train_partition(client, iter, worker_rank)

    def body(driver):
        with ThreadPoolExecutor(max_workers=8) as pool:  # @sync for ... @async
            wait([pool.submit(worker, driver, worker_rank) for worker_rank in range(1, 9)])
        return driver

    driver = with_iteration(client, experiment_id)(body)
    children = get_child_iterations(client, driver.id)
    workers = {int(get_parameters(client, c.id)[0].value): c for c in children}
    show("len(get_child_iterations(client, driver.id))", len(children), 8)
    show("get_iteration(client, driver.id).status_id == IterationStatus.SUCCEEDED",
         get_iteration(client, driver.id).status_id == IterationStatus.SUCCEEDED, True)
    show("[workers[rank].status.name for rank in range(1, 9)]", [workers[r].status.name for r in range(1, 9)],
         ["SUCCEEDED"] * 4 + ["FAILED"] + ["SUCCEEDED"] * 3)
    show("workers[5].error_message", workers[5].error_message, "RuntimeError: worker 5 lost its partition at step 9")
    traceback_text = get_iteration(client, workers[5].id).traceback
    show('"train_partition" in get_iteration(client, workers[5].id).traceback',
         "train_partition" in traceback_text, True)
    show("len(get_metrics(client, workers[5].id))", len(get_metrics(client, workers[5].id)), 10)
    client.close()


def main(database: str | None = None) -> None:
    """Run the guide, section by section, on a fresh database (and a server of its own)."""
    with tempfile.TemporaryDirectory(prefix="deardiary-guide-") as scratch:
        initialize_database(database or str(Path(scratch) / "guide.db"))
        print("# Scaffold a sweep")
        experiment_id, driver_id = scaffold_a_sweep()
        print("# Spawn a child per trial")
        spawn_a_child_per_trial(experiment_id, driver_id)
        print("# Auto-finalised trials with with_iteration")
        succeeded_id, _ = auto_finalised_trials(experiment_id, driver_id)
        print("# Walking the tree")
        walking_the_tree(driver_id)
        print("# Cascading deletes")
        cascading_deletes(driver_id, succeeded_id)
        print("# Distributed-worker pattern")
        server, url = start_server(Path(scratch) / "server.db")
        try:
            distributed_worker_pattern(url)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print("every value the guide shows was reproduced")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
