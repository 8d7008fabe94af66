"""Plain torch.distributed (no Lightning) with rank_iteration, for the tests.

    torchrun --standalone --nproc_per_node 2 rank_scenario.py torchrun URI EXPERIMENT_ID [FAIL_RANK]
    python rank_scenario.py spawn URI EXPERIMENT_ID [FAIL_RANK]

torchrun: rank 0 creates the driver and broadcasts its id. spawn: the launching process opens the
driver with driver_iteration and the workers inherit its id through the environment.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from diary_integrations import connect
from diary_integrations.distributed import driver_iteration, rank_iteration


def train(uri: str, experiment_id: int, fail_rank: int | None) -> None:
    tracker = connect(uri)
    with rank_iteration(tracker, experiment_id) as it:
        rank = dist.get_rank()
        for step in range(4):
            if rank == fail_rank and step == 2:
                raise ValueError(f"bad shard on rank {rank}")
            grad = torch.tensor([float(rank + step)])
            dist.all_reduce(grad)  # the collective a crashed peer breaks
            tracker.log_metrics(it.id, {"grad_sum": grad.item()}, step=step)
        print(f"RANK {rank} CHILD {it.id} PARENT {it.parent_iteration_id}", flush=True)


def spawned(index: int, uri: str, experiment_id: int, fail_rank: int | None, port: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    dist.init_process_group("gloo", rank=index, world_size=2)
    try:
        train(uri, experiment_id, fail_rank)
    finally:
        dist.destroy_process_group()


def main() -> None:
    mode, uri, experiment_id = sys.argv[1], sys.argv[2], int(sys.argv[3])
    fail_rank = int(sys.argv[4]) if len(sys.argv) > 4 else None
    if mode == "torchrun":
        dist.init_process_group("gloo")
        train(uri, experiment_id, fail_rank)
        dist.destroy_process_group()
        return
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    with driver_iteration(uri, experiment_id) as driver:
        print(f"DRIVER {driver.id}", flush=True)
        mp.spawn(spawned, args=(uri, experiment_id, fail_rank, port), nprocs=2)


if __name__ == "__main__":
    main()
