"""Distributed workers against a tracking server: one driver iteration, eight concurrent workers that
each open a child iteration over HTTP, and one worker that crashes without stopping its siblings.

The script starts its own `diary server` on a free loopback port (SQLite behind it) and stops it at
the end. Against a real deployment, drop the server part and connect to its URL.

    python examples/distributed_workers.py [DATABASE]     (default: ./deardiary.db, kept to look at)
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from diary_integrations import ExperimentStatus, IterationStatus, connect


def start_server(database: Path) -> tuple[subprocess.Popen[str], str]:
    """`diary server --port 0`: the server picks a free port and prints its URL first thing."""
    server = subprocess.Popen(
        [sys.executable, "-m", "diary_integrations.cli", "server", "--host", "127.0.0.1", "--port", "0",
         "--uri", str(database)],
        stdout=subprocess.PIPE, text=True,
    )
    line = server.stdout.readline()  # "diary server listening on http://127.0.0.1:PORT"
    if "listening on" not in line:
        server.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return server, line.split()[-1]


def worker(client, experiment_id: int, rank: int, driver_id: int) -> None:
    with client.with_iteration(experiment_id, parent_iteration_id=driver_id, name=f"worker {rank}") as it:
        client.create_parameter(it.id, "worker_rank", rank)
        for epoch in range(5):
            loss = 1.0 / (rank + epoch + 1)
            client.log_metrics(it.id, {"loss": loss, "throughput": 100.0 * rank}, step=epoch)
            if rank == 3 and epoch == 2:
                raise RuntimeError(f"rank {rank} lost its data partition at epoch {epoch}")


def main(database: Path) -> None:
    server, url = start_server(database)
    try:
        client = connect(url, username="default", password="default")
        # Names are unique: found on a second run, created on the first.
        project = client.get_project_by_name("Fraud detection")
        project_id = project.id if project else client.create_project("Fraud detection").id
        experiment = client.get_experiment_by_name(project_id, "DDP run")
        experiment_id = experiment.id if experiment else client.create_experiment(
            project_id, ExperimentStatus.IN_PROGRESS, "DDP run").id

        with client.with_iteration(experiment_id, name="8 workers") as driver:
            client.create_parameter(driver.id, "world_size", 8)
            with ThreadPoolExecutor(8) as pool:
                futures = [pool.submit(worker, client, experiment_id, r, driver.id) for r in range(1, 9)]
            errors = [f.exception() for f in futures if f.exception() is not None]
            print(f"{len(errors)} worker(s) crashed: {errors}")

        print(f"driver #{driver.id}: {client.get_iteration(driver.id).status.name}")
        for child in client.get_child_iterations(driver.id):
            rank = client.get_parameters(child.id)[0].value
            last = client.get_latest_metrics([child.id])[child.id].get("loss")
            print(f"  rank {rank}: #{child.id} {child.status.name} last loss={last:.3f} {child.error_message}")
        failed = client.get_iterations(experiment_id, status=IterationStatus.FAILED)
        print(f"FAILED iterations: {[it.id for it in failed]}")
        print(f"\nThe server wrote into {database}: diary ui {database}, or diary ls {experiment_id} --uri {database}")
        client.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "deardiary.db"))
