"""Per-rank iterations with real multi-process training on CPU (gloo): Lightning's ddp and ddp_spawn,
torchrun and mp.spawn with rank_iteration; and the two Lightning examples."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from diary_integrations import IterationStatus, connect

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TRACKER_URIS = ["sqlite", "server"]


@pytest.fixture(params=TRACKER_URIS)
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the runs write: a SQLite file shared by every rank, or the URL of a live tracking server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.db'}"
    return request.getfixturevalue("server_url")


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in {"DIARY_DRIVER_ITERATION_ID", "LOCAL_RANK", "RANK"}}
    environ.update(env)
    return subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=cwd, env=environ)


def rank_children(tracker, driver_id: int) -> dict[int, object]:
    """The driver's children by the rank each recorded."""
    out = {}
    for child in tracker.get_child_iterations(driver_id):
        params = {p.key: p.value for p in tracker.get_parameters(child.id)}
        assert params["world_size"] == "2"
        assert child.name == f"rank {params['rank']}"  # named for the dashboard and `diary tree`
        out[int(params["rank"])] = child
    return out


def assert_nothing_running(tracker, experiment_id: int) -> None:
    running = tracker.get_iterations(experiment_id, status=IterationStatus.RUNNING)
    assert running == [], f"left RUNNING: {running}"


@pytest.mark.system_metrics
def test_ddp_example_gives_a_driver_and_a_child_per_rank(uri, tmp_path):
    done = run([sys.executable, str(ROOT / "examples" / "lightning_ddp.py"), uri], tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    tracker = connect(uri)
    [driver] = [it for it in tracker.get_iterations(1) if it.parent_iteration_id is None]
    assert f"driver iteration {driver.id}" in done.stdout
    assert driver.status is IterationStatus.SUCCEEDED
    assert {p.key: p.value for p in tracker.get_parameters(driver.id)} == {"lr": "0.05", "hidden": "8"}
    children = rank_children(tracker, driver.id)
    assert sorted(children) == [0, 1]
    assert all(c.status is IterationStatus.SUCCEEDED for c in children.values())
    # 64 samples, batch 8, 2 ranks: 4 steps per epoch per rank, 2 epochs.
    losses = {r: tracker.get_metrics(c.id, key="train_loss") for r, c in children.items()}
    assert [m.step for m in losses[0]] == [m.step for m in losses[1]] == list(range(8))
    assert [m.value for m in losses[0]] != [m.value for m in losses[1]]  # each rank's own shard
    driver_loss = tracker.get_metrics(driver.id, key="train_loss")
    assert [m.value for m in driver_loss] == [m.value for m in losses[0]]  # rank 0's metrics
    val = {r: [m.value for m in tracker.get_metrics(c.id, key="val_loss")] for r, c in children.items()}
    assert len(val[0]) == 2 and val[0] == val[1]  # sync_dist: identical on every rank
    assert f"#{children[1].id} rank 1 SUCCEEDED" in done.stdout
    # System metrics: each rank's child records its own process, not the other rank's (Lightning's ddp
    # starts rank 1 as a child process of rank 0); the driver has none of its own.
    for child in children.values():
        counts = [m.value for m in tracker.get_metrics(child.id, key="system/proc.processes")]
        assert counts and set(counts) == {1.0}
        assert tracker.get_metrics(child.id, key="system/proc.rss_mib.max")
    assert not [m for m in tracker.get_metrics(driver.id) if m.key.startswith("system/")]


# Both logger modes in every launch (one Trainer, two loggers); each launcher once, on one tracker each
# (a launch costs ~15 s; the server's path is the same for every launcher).
@pytest.mark.parametrize(
    ("uri", "launcher"), [("sqlite", "ddp"), ("sqlite", "ddp_spawn"), ("server", "torchrun")], indirect=["uri"],
)
def test_ddp_rank_failure_is_recorded_with_its_own_error_in_both_modes(uri, tmp_path, launcher):
    script = [str(HERE / "ddp_scenario.py"), uri, "ddp" if launcher == "torchrun" else launcher, "1"]
    if launcher == "torchrun":
        script = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *script]
    done = run([sys.executable, *script], tmp_path)
    assert done.returncode != 0
    assert "ValueError: boom at step 2 on rank 1" in done.stderr
    tracker = connect(uri)
    project = tracker.get_project_by_name("Fraud detection")
    own_error = "rank 1: ValueError: boom at step 2 on rank 1"

    # per_rank=True: a driver and a child per rank.
    driver_id = int(done.stdout.split("DRIVER ")[1].split()[0])
    driver = tracker.get_iteration(driver_id)
    # The real error, not rank 0's secondary "[gloo] Connection closed by peer".
    assert driver.status is IterationStatus.FAILED
    assert driver.error_message == own_error
    children = rank_children(tracker, driver_id)
    assert sorted(children) == [0, 1]
    assert children[1].status is IterationStatus.FAILED
    assert children[1].error_message == "ValueError: boom at step 2 on rank 1"
    assert "training_step" in children[1].traceback
    assert children[0].status in (IterationStatus.FAILED, IterationStatus.KILLED)  # gloo error, or swept
    assert tracker.get_metrics(children[1].id, key="train_loss")  # what it logged before dying is kept
    assert tracker.get_metrics(driver_id, key="train_loss")  # rank 0's copy, written before rank 1 ended it
    assert_nothing_running(tracker, driver.experiment_id)

    # Default mode: one iteration, written by rank 0, ended with rank 1's own error.
    shared = tracker.get_experiment_by_name(project.id, "DDP shared")
    [it] = tracker.get_iterations(shared.id)
    assert it.status is IterationStatus.FAILED
    assert it.error_message == own_error
    assert "training_step" in it.traceback
    assert "Connection closed" not in it.traceback
    assert tracker.get_metrics(it.id, key="train_loss")  # rank 0's metrics before the failure
    assert {p.key for p in tracker.get_parameters(it.id)} >= {"lr", "fail_rank"}


def _experiment(uri: str) -> int:
    tracker = connect(uri)
    project_id, _ = tracker.create_project("Fraud detection")
    return tracker.create_experiment(project_id, 1, "torch.distributed").id


@pytest.mark.parametrize("fail_rank", [None, 1])
def test_rank_iteration_under_torchrun_shares_the_driver_by_broadcast(uri, tmp_path, fail_rank):
    experiment_id = _experiment(uri)
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            str(HERE / "rank_scenario.py"), "torchrun", uri, str(experiment_id)]
    done = run(args + ([] if fail_rank is None else [str(fail_rank)]), tmp_path)
    tracker = connect(uri)
    [driver] = [it for it in tracker.get_iterations(experiment_id) if it.parent_iteration_id is None]
    children = rank_children(tracker, driver.id)
    assert sorted(children) == [0, 1]
    if fail_rank is None:
        assert done.returncode == 0, done.stderr[-4000:]
        assert driver.status is IterationStatus.SUCCEEDED  # ended by rank 0, which created it
        for rank, child in children.items():
            assert child.status is IterationStatus.SUCCEEDED
            assert f"RANK {rank} CHILD {child.id} PARENT {driver.id}" in done.stdout
            assert [m.value for m in tracker.get_metrics(child.id)] == [1.0, 3.0, 5.0, 7.0]  # all-reduced
    else:
        assert done.returncode != 0
        assert driver.status is IterationStatus.FAILED
        assert driver.error_message == "rank 1: ValueError: bad shard on rank 1"
        assert children[1].error_message == "ValueError: bad shard on rank 1"
        assert children[0].status in (IterationStatus.FAILED, IterationStatus.KILLED)
    assert_nothing_running(tracker, experiment_id)


def test_rank_iteration_under_mp_spawn_inherits_the_driver(uri, tmp_path):
    experiment_id = _experiment(uri)
    done = run([sys.executable, str(HERE / "rank_scenario.py"), "spawn", uri, str(experiment_id), "1"], tmp_path)
    assert done.returncode != 0
    tracker = connect(uri)
    driver_id = int(done.stdout.split("DRIVER ")[1].split()[0])
    assert len(tracker.get_iterations(experiment_id)) == 3  # one driver, no second one made by a rank
    driver = tracker.get_iteration(driver_id)
    assert driver.status is IterationStatus.FAILED
    assert driver.error_message == "rank 1: ValueError: bad shard on rank 1"
    children = rank_children(tracker, driver_id)
    assert children[1].status is IterationStatus.FAILED and children[0].status is not IterationStatus.RUNNING
    assert_nothing_running(tracker, experiment_id)


def test_mnist_like_example(uri, tmp_path):
    done = run([sys.executable, str(ROOT / "examples" / "lightning_mnist_like.py"), uri], tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "iteration 1: SUCCEEDED" in done.stdout
    assert "parameters: lr=0.003 hidden=32 optimizer/name=adam" in done.stdout
    tracker = connect(uri)
    params = {p.key: p.value for p in tracker.get_parameters(1)}
    assert params["optimizer/betas"] == "[0.9, 0.999]" and params["checkpoint/monitor"] == "val_acc"
    assert [m.step for m in tracker.get_metrics(1, key="val_acc")] == [15, 31, 47]
    [resource] = tracker.get_resources(tracker.get_iteration(1).experiment_id)
    assert resource.name.startswith("iteration-1/checkpoints/epoch=") and resource.size_bytes > 0
    assert f"best checkpoint: resource {resource.id}" in done.stdout
    # Checkpoint files are scratch (the best one is in the tracker): none is left where the user ran it.
    assert not [p for p in tmp_path.rglob("*") if p.suffix == ".ckpt" or " " in p.name]


def test_ddp_run_as_frames_equals_the_tracker(uri, tmp_path):
    """The DDP example's driver and per-rank children turned into frames (diary_integrations/frames.py):
    every number is the tracker's own, read back with plain get_* calls, in pandas and in polars."""
    import pandas as pd
    import polars as pl

    from diary_integrations import search_frame, sweep_frame, to_frame

    done = run([sys.executable, str(ROOT / "examples" / "lightning_ddp.py"), uri], tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    tracker = connect(uri)
    [driver] = [it for it in tracker.get_iterations(1) if it.parent_iteration_id is None]
    children = rank_children(tracker, driver.id)
    kids = tracker.get_child_iterations(driver.id)

    def latest(iteration_id: int) -> dict[str, float]:
        out: dict[str, float] = {}
        for point in sorted(tracker.get_metrics(iteration_id), key=lambda m: (m.step, m.id)):
            out[point.key] = point.value
        return out

    frame = sweep_frame(driver.id, tracker=tracker)
    assert list(frame["id"]) == [k.id for k in kids] and sorted(children) == [0, 1] and len(kids) == 2
    assert list(frame["status"]) == ["SUCCEEDED"] * 2 and set(frame["parent"]) == {driver.id}
    assert list(frame["name"]) == [k.name for k in kids]
    assert list(frame["created"]) == [pd.Timestamp(k.created_date) for k in kids]
    assert list(frame["duration"]) == pytest.approx([(k.end_date - k.created_date).total_seconds() for k in kids])
    # rank and world_size are numbers in every row, so the columns are integers.
    assert frame["params.rank"].tolist() == [int(p) for p in (
        {q.key: q.value for q in tracker.get_parameters(k.id)}["rank"] for k in kids)]
    assert frame["params.world_size"].tolist() == [2, 2]
    for row, kid in zip(frame.to_dict("records"), kids, strict=True):
        shown = {c[len("metrics."):]: v for c, v in row.items() if c.startswith("metrics.")}
        assert shown == latest(kid.id) and {"train_loss", "val_loss"} <= shown.keys()
    # Each rank trained on its own shard; val_loss was all-reduced (sync_dist), so the ranks agree on it.
    assert frame["metrics.train_loss"].nunique() == 2 and frame["metrics.val_loss"].nunique() == 1

    # The driver's row: the hyperparameters (numbers) and rank 0's metrics.
    [top] = to_frame([driver], tracker=tracker).to_dict("records")
    assert (top["params.lr"], top["params.hidden"]) == (0.05, 8)
    assert top["metrics.train_loss"] == latest(children[0].id)["train_loss"] == latest(driver.id)["train_loss"]

    # The long frame of the series: every point, as get_metrics has them.
    long = sweep_frame(driver.id, history=["train_loss", "val_loss"], tracker=tracker)
    expected = [(k.id, key, m.step, m.value) for key in ("train_loss", "val_loss") for k in kids
                for m in tracker.get_metrics(k.id, key=key)]
    assert list(long.itertuples(index=False, name=None)) == expected and len(expected) == 2 * (8 + 2)

    # A search over the run's tree as a frame, and polars with the same numbers.
    ranked = search_frame(driver.experiment_id, "depth = 1", ["metrics.train_loss DESC"], tracker=tracker)
    assert ranked["metrics.train_loss"].tolist() == sorted(frame["metrics.train_loss"], reverse=True)
    wide = sweep_frame(driver.id, tracker=tracker, backend="polars")
    assert isinstance(wide, pl.DataFrame) and wide["params.rank"].dtype == pl.Int64
    assert wide["metrics.train_loss"].to_list() == frame["metrics.train_loss"].tolist()
