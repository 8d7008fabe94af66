"""Multi-node DDP on test hosts made of network namespaces: the tracking server on host 1, a 2-node
`torchrun` (c10d rendezvous, gloo over the veth network) on hosts 2 and 3. The hosts meet only over
TCP on their private /24, so the one driver and the child per global rank can only come from the server.

One rank fails: its own error is on its child and on the driver, every other rank's child is ended, and
each child records `rank`, `world_size`, `node_rank` and `local_rank`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from diary_integrations import ExperimentStatus, IterationStatus, LocalTracker
from diary_integrations.tracker.local import DEFAULT_USERNAME

from .netns import Hosts, make_hosts, require_netns
from .servers import ADMIN_PASSWORD, auth_env, start_server

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
LIGHTNING = HERE.parent / "lightning"
RENDEZVOUS_PORT = "29400"
# Launcher variables of an outer run must not leak into the nodes.
_LAUNCH_VARS = {"RANK", "LOCAL_RANK", "WORLD_SIZE", "GROUP_RANK", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT"}


@dataclass
class Cluster:
    hosts: Hosts
    url: str  # the tracking server, as the nodes reach it
    database: str  # its SQLite file, read by the test (which cannot reach the server's address)
    workdir: Path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_netns()
    workdir = tmp_path_factory.mktemp("multinode")
    database = f"sqlite:///{workdir / 'tracking.db'}"
    hosts = make_hosts(3)
    server = None
    try:
        server = start_server(
            workdir,
            "tracking",
            database,
            auth_env(),
            host=hosts.hosts[0].address,
            command_prefix=tuple(hosts.hosts[0].command()),
        )
        yield Cluster(hosts, server.url, database, workdir)
    finally:
        if server is not None:
            server.stop()
        hosts.remove()


def node_env(cluster: Cluster) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIARY_") and k not in _LAUNCH_VARS}
    env.update(
        DIARY_USERNAME=DEFAULT_USERNAME,
        DIARY_PASSWORD=ADMIN_PASSWORD,
        DIARY_SPOOL_DIR=str(cluster.workdir / "spool"),
        GLOO_SOCKET_IFNAME="eth0",
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def run_two_nodes(cluster: Cluster, nproc: int, script: list[str], name: str) -> list[tuple[int, str, str]]:
    """torchrun on hosts 2 and 3 (host 2 holds the rendezvous store); (returncode, stdout, stderr) per node."""
    endpoint = f"{cluster.hosts.hosts[1].address}:{RENDEZVOUS_PORT}"
    nodes = []
    for index, host in enumerate(cluster.hosts.hosts[1:3]):
        argv = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes",
            "2",
            "--nproc_per_node",
            str(nproc),
            "--rdzv_backend",
            "c10d",
            "--rdzv_endpoint",
            endpoint,
            "--rdzv_id",
            f"{cluster.hosts.tag}-{name}",
            "--rdzv_conf",
            f"is_host={1 if index == 0 else 0}",
            "--local_addr",
            host.address,
            "--max_restarts",
            "0",
            *script,
        ]
        workdir = cluster.workdir / f"{name}-node{index}"
        workdir.mkdir()
        nodes.append(
            cluster.hosts.popen(
                host,
                argv,
                cwd=workdir,
                env=node_env(cluster),
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        )
    outputs = []
    for node in nodes:
        out, err = node.communicate(timeout=400)
        outputs.append((node.returncode, out, err))
    return outputs


def rank_children(tracker: LocalTracker, driver_id: int, world: int, nproc: int) -> dict[int, object]:
    """The driver's children by global rank; each names its node and local rank, consistently."""
    out = {}
    for child in tracker.get_child_iterations(driver_id):
        params = {p.key: int(p.value) for p in tracker.get_parameters(child.id)}
        assert params["world_size"] == world
        assert params["rank"] == params["node_rank"] * nproc + params["local_rank"], params
        assert child.name == f"rank {params['rank']}"
        out[params["rank"]] = child
    assert sorted(out) == list(range(world))
    return out


def test_torchrun_on_two_nodes_one_rank_failing(cluster: Cluster) -> None:
    tracker = LocalTracker(cluster.database)
    project_id, _ = tracker.create_project("Multi-node torch")
    experiment_id, _ = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "2 nodes x 2 ranks")
    script = [str(LIGHTNING / "rank_scenario.py"), "torchrun", cluster.url, str(experiment_id), "3"]
    outputs = run_two_nodes(cluster, 2, script, "torch")
    assert any(code != 0 for code, _, _ in outputs)
    assert "ValueError: bad shard on rank 3" in "".join(err for _, _, err in outputs), outputs

    [driver] = [it for it in tracker.get_iterations(experiment_id) if it.parent_iteration_id is None]
    assert driver.status is IterationStatus.FAILED
    assert driver.error_message == "rank 3: ValueError: bad shard on rank 3"
    children = rank_children(tracker, driver.id, world=4, nproc=2)
    assert children[3].status is IterationStatus.FAILED
    assert children[3].error_message == "ValueError: bad shard on rank 3"
    for rank in (0, 1, 2):
        assert children[rank].status in (IterationStatus.FAILED, IterationStatus.KILLED), children[rank]
    assert {p.value for c in children.values() for p in tracker.get_parameters(c.id) if p.key == "node_rank"} == {
        "0",
        "1",
    }
    assert tracker.get_iterations(experiment_id, status=IterationStatus.RUNNING) == []
    tracker.close()


def test_lightning_num_nodes_2_one_rank_failing(cluster: Cluster) -> None:
    script = [str(HERE / "lightning_nodes.py"), cluster.url, "2", "1"]
    outputs = run_two_nodes(cluster, 1, script, "lightning")
    assert any(code != 0 for code, _, _ in outputs)
    assert "ValueError: boom at step 2 on rank 1" in "".join(err for _, _, err in outputs), outputs
    own_error = "rank 1: ValueError: boom at step 2 on rank 1"

    tracker = LocalTracker(cluster.database)
    project = tracker.get_project_by_name("Multi-node")
    per_rank = tracker.get_experiment_by_name(project.id, "DDP nodes")
    [driver] = [it for it in tracker.get_iterations(per_rank.id) if it.parent_iteration_id is None]
    assert driver.status is IterationStatus.FAILED
    assert driver.error_message == own_error
    children = rank_children(tracker, driver.id, world=2, nproc=1)
    assert children[1].status is IterationStatus.FAILED
    assert children[1].error_message == "ValueError: boom at step 2 on rank 1"
    assert "training_step" in children[1].traceback
    assert children[0].status in (IterationStatus.FAILED, IterationStatus.KILLED)
    assert tracker.get_metrics(children[1].id, key="train_loss")  # what it logged before failing is kept

    shared = tracker.get_experiment_by_name(project.id, "DDP nodes shared")
    [run] = tracker.get_iterations(shared.id)
    assert run.status is IterationStatus.FAILED
    assert run.error_message == own_error
    for experiment in (per_rank, shared):
        assert tracker.get_iterations(experiment.id, status=IterationStatus.RUNNING) == []
    tracker.close()
