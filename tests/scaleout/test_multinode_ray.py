"""Ray Tune over two Ray nodes on test hosts made of network namespaces: the tracking server on host 1, a
Ray head (`ray start --head`) on host 2, a Ray worker node (`ray start --address`) on host 3, the driver
(`Tuner.fit` with DiaryCallback) on the head's host. The hosts meet only over TCP on their private /24.

Trials are placed on both nodes (a custom resource per node); the tree is the same as on one machine (one
driver, a child per trial, a raising trial FAILED with its text from the other node), each child records
the node it ran on (`node_ip`), and a trial on either node finds its own child through Ray's cluster
store. Teardown ends every process left in the hosts (Ray's daemons detach from `ray start`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("ray.tune", reason="the multi-node Ray test needs the [ray] extra")

from diary_integrations import IterationStatus, LocalTracker  # noqa: E402
from diary_integrations.tracker.local import DEFAULT_USERNAME  # noqa: E402

from .netns import Host, Hosts, make_hosts, require_netns  # noqa: E402
from .servers import ADMIN_PASSWORD, auth_env, start_server  # noqa: E402
from .waiting import wait_until  # noqa: E402

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GCS_PORT = "6379"
RAY = str(Path(sys.executable).with_name("ray"))


@dataclass
class RayCluster:
    hosts: Hosts
    url: str  # the tracking server, as the nodes reach it
    database: str  # its SQLite file, read by the test (which cannot reach the server's address)
    workdir: Path
    head: Host
    worker: Host
    env: dict[str, str]

    @property
    def address(self) -> str:
        return f"{self.head.address}:{GCS_PORT}"


def ray_env(workdir: Path) -> dict[str, str]:
    """What every Ray process and the driver run with: this checkout and ray_nodes.py importable on both
    nodes (Ray's workers inherit the raylet's environment), no telemetry, no token file, a home of its
    own, one thread per process."""
    (workdir / "home").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIARY_", "RAY_"))}
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in (str(HERE), str(REPO), os.environ.get("PYTHONPATH")) if p),
        DIARY_USERNAME=DEFAULT_USERNAME,
        DIARY_PASSWORD=ADMIN_PASSWORD,
        DIARY_SPOOL_DIR=str(workdir / "spool"),
        DIARY_SYSTEM_METRICS="off",
        RAY_USAGE_STATS_ENABLED="0",
        # No token file in a home directory (`ray start` makes one by default, and every later Ray on
        # the machine would then switch token auth on): the test's hosts are private to it anyway.
        RAY_AUTH_MODE="disabled",
        HOME=str(workdir / "home"),
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def start_node(hosts: Hosts, host: Host, env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[str]:
    """`ray start --block` on `host` (one CPU of its own, a custom resource naming it, a small object
    store): it stays in the foreground, so the test owns it; its daemons are ended with the host."""
    argv = [RAY, "start", "--block", "--node-ip-address", host.address, "--num-cpus", "1",
            "--object-store-memory", str(80 * 1024 * 1024), "--disable-usage-stats", *args]
    return hosts.popen(host, argv, env=env, text=True, stdout=log.open("w"), stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    require_netns()
    workdir = tmp_path_factory.mktemp("multinode-ray")
    # Ray's session directory holds unix sockets, whose paths must stay short: not under pytest's tmp.
    temp_dir = Path(tempfile.mkdtemp(prefix="dray-"))
    database = f"sqlite:///{workdir / 'tracking.db'}"
    hosts = make_hosts(3)
    server = None
    try:
        server = start_server(workdir, "tracking", database, auth_env(), host=hosts.hosts[0].address,
                              command_prefix=tuple(hosts.hosts[0].command()))
        head, worker = hosts.hosts[1], hosts.hosts[2]
        env = ray_env(workdir)
        cluster = RayCluster(hosts, server.url, database, workdir, head, worker, env)
        logs = {"head": workdir / "ray-head.log", "worker": workdir / "ray-worker.log"}
        nodes = {"head": start_node(hosts, head, env, logs["head"], "--head", "--port", GCS_PORT,
                                    "--include-dashboard", "false", "--temp-dir", str(temp_dir),
                                    "--resources", '{"node_a": 2}')}

        def started(name: str) -> bool:
            assert nodes[name].poll() is None, logs[name].read_text()[-3000:]
            return "Ray runtime started" in logs[name].read_text()

        wait_until(lambda: started("head"), timeout=120, what="the Ray head", poll=0.5)
        nodes["worker"] = start_node(hosts, worker, env, logs["worker"], "--address", cluster.address,
                                     "--resources", '{"node_b": 2}')
        # Registered with the head once started; a trial that needs it waits for it in Tune's queue.
        wait_until(lambda: started("worker"), timeout=120, what="the Ray worker node", poll=0.5)
        yield cluster
    finally:
        if server is not None:
            server.stop()
        for process in hosts.processes:  # `ray start --block` stops its node's daemons on SIGTERM
            if process.poll() is None:
                process.terminate()
        for process in hosts.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        hosts.remove()  # and whatever is left in the hosts, SIGKILLed
        subprocess.run(["rm", "-rf", str(temp_dir)], timeout=60)


def test_tune_trials_on_two_nodes_each_child_records_its_node(ray_cluster: RayCluster) -> None:
    storage = ray_cluster.workdir / "tune"
    command = ray_cluster.head.command(sys.executable, str(HERE / "ray_nodes.py"), ray_cluster.address,
                                       ray_cluster.url, str(storage))
    done = subprocess.run(command, env=ray_cluster.env, capture_output=True, text=True, timeout=300,
                          cwd=ray_cluster.workdir)
    assert done.returncode == 0, done.stderr[-4000:]
    driver_id = int(done.stdout.split("DRIVER ")[1].split()[0])
    assert done.stdout.split("BEST ")[1].split()[0] == "0"

    tracker = LocalTracker(ray_cluster.database)
    driver = tracker.get_iteration(driver_id)
    assert driver.status is IterationStatus.SUCCEEDED and driver.parent_iteration_id is None
    everything = tracker.get_iterations(driver.experiment_id)
    assert [it.id for it in everything if it.parent_iteration_id is None] == [driver_id]
    children = tracker.get_child_iterations(driver_id)
    params = tracker.get_parameter_values([driver_id] + [c.id for c in children])
    by_x = {int(params[c.id]["x"]): c for c in children}
    assert sorted(by_x) == [0, 1, 2, 3]
    head, worker = ray_cluster.head.address, ray_cluster.worker.address
    for x, child in by_x.items():
        expected = head if x % 2 == 0 else worker
        if x == 3:  # raised on the worker node: FAILED with its own text, from Tune's report
            assert child.status is IterationStatus.FAILED
            assert child.error_message == f"ValueError: diverged at x=3 on {worker}"
            assert "trainable" in child.traceback
            continue
        assert child.status is IterationStatus.SUCCEEDED, child
        assert params[child.id]["node_ip"] == expected  # the node it ran on
        points = [p for p in tracker.get_metrics(child.id)]
        assert sorted(p.step for p in points if p.key == "loss") == [1, 2, 3]
        # The trial found its own child through Ray's cluster store, on whichever node it ran.
        assert {p.value for p in points if p.key == "child"} == {float(child.id)}
    assert {params[c.id]["node_ip"] for x, c in by_x.items() if x != 3} == {head, worker}
    assert params[driver_id]["best.x"] == "0"
    assert tracker.get_latest_metrics([driver_id])[driver_id]["n_error_trials"] == 1
    assert tracker.get_iterations(driver.experiment_id, status=IterationStatus.RUNNING) == []
    tracker.close()
