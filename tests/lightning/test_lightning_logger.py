"""DiaryLogger in one process: real Lightning training on CPU against a real tracker (a SQLite file, or
a live tracking server)."""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from diary_models import TinyModel, loader, trainer  # noqa: E402

from diary_integrations import IterationStatus, Unprocessable, connect  # noqa: E402
from diary_integrations.lightning import DiaryLogger, flatten_hyperparameters  # noqa: E402

pytestmark = pytest.mark.slow

TRACKER_URIS = ["sqlite", "server"]


@pytest.fixture(params=TRACKER_URIS)
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the logger writes: a SQLite file, or the URL of a live tracking server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.db'}"
    return request.getfixturevalue("server_url")


def series(tracker, iteration_id: int, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in tracker.get_metrics(iteration_id, key=key)]


def test_fit_records_parameters_metric_series_and_succeeds(uri, tmp_path):
    logger = DiaryLogger("Fraud detection", "MLP", uri=uri, save_dir=tmp_path / "logs")
    model = TinyModel(lr=0.05, optimizer={"name": "sgd", "momentum": {"beta": 0.9}})
    trainer(logger).fit(model, loader(), loader(seed=1))  # 2 epochs of 4 batches

    tracker = connect(uri)
    it = tracker.get_iteration(logger.iteration_id)
    assert it.status is IterationStatus.SUCCEEDED and it.end_date is not None and it.error_message == ""
    assert logger.version == str(it.id) and logger.name == "MLP"
    assert logger.log_dir == str(tmp_path / "logs" / "MLP" / str(it.id))
    experiment = tracker.get_experiment(it.experiment_id)
    assert experiment.name == "MLP" and tracker.get_project(experiment.project_id).name == "Fraud detection"
    params = {p.key: p.value for p in tracker.get_parameters(it.id)}
    assert params["lr"] == "0.05"
    assert params["optimizer/name"] == "sgd" and params["optimizer/momentum/beta"] == "0.9"
    assert params["fail_at_step"] == "None"
    train = series(tracker, it.id, "train_loss")
    assert [s for s, _ in train] == list(range(8))  # one point per global step
    assert train[-1][1] < train[0][1]  # it learned
    assert [s for s, _ in series(tracker, it.id, "val_loss")] == [3, 7]  # epoch ends
    assert series(tracker, it.id, "epoch") == [(s, 0.0) for s in range(4)] + [(s, 1.0) for s in range(4, 8)]
    assert tracker.get_environment(it.id) is not None  # a top-level run snapshots its environment
    assert logger.written == len(tracker.get_metrics(it.id))


def test_second_logger_reuses_project_and_experiment_by_name(uri, tmp_path):
    first = DiaryLogger("Fraud detection", "MLP", uri=uri, save_dir=tmp_path)
    second = DiaryLogger("Fraud detection", "MLP", uri=uri, save_dir=tmp_path)
    by_id = DiaryLogger(1, first.experiment_id, uri=uri, save_dir=tmp_path)
    assert first.iteration_id != second.iteration_id != by_id.iteration_id
    assert first.experiment_id == second.experiment_id == by_id.experiment_id
    assert by_id.name == "MLP"
    for logger in (first, second, by_id):
        logger.finalize("success")


def test_exception_in_training_step_fails_with_its_text(uri, tmp_path):
    logger = DiaryLogger("Fraud detection", "MLP", uri=uri, save_dir=tmp_path)
    with pytest.raises(ValueError, match="boom at step 3"):
        trainer(logger).fit(TinyModel(fail_at_step=3), loader())
    tracker = connect(uri)
    it = tracker.get_iteration(logger.iteration_id)
    assert it.status is IterationStatus.FAILED and it.end_date is not None
    assert it.error_message == "ValueError: boom at step 3 on rank 0"
    assert "Traceback (most recent call last)" in it.traceback and "training_step" in it.traceback
    assert [s for s, _ in series(tracker, it.id, "train_loss")] == [0, 1, 2]  # what it logged before is kept


def test_keyboard_interrupt_is_killed(uri, tmp_path):
    logger = DiaryLogger("Fraud detection", "MLP", uri=uri, save_dir=tmp_path)
    with pytest.raises(SystemExit):  # Lightning turns Ctrl-C into sys.exit(1) after finalising
        trainer(logger).fit(TinyModel(interrupt_at_step=2), loader())
    it = connect(uri).get_iteration(logger.iteration_id)
    assert it.status is IterationStatus.KILLED and it.error_message == "KeyboardInterrupt"


def test_fit_then_test_writes_one_iteration_and_ends_succeeded(uri, tmp_path):
    logger = DiaryLogger("Fraud detection", "MLP", uri=uri, save_dir=tmp_path)
    model = TinyModel()
    tr = trainer(logger)
    tr.fit(model, loader())
    tracker = connect(uri)
    assert tracker.get_iteration(logger.iteration_id).status is IterationStatus.SUCCEEDED
    tr.test(model, loader(seed=2))
    it = tracker.get_iteration(logger.iteration_id)
    assert it.status is IterationStatus.SUCCEEDED and it.end_date is not None
    assert len(tracker.get_iterations(it.experiment_id)) == 1
    assert [s for s, _ in series(tracker, it.id, "test_loss")] == [8]  # after the 8 training steps
    assert len(series(tracker, it.id, "train_loss")) == 8
    keys = [p.key for p in tracker.get_parameters(it.id)]
    assert len(keys) == len(set(keys)) and "lr" in keys


def test_fit_then_failing_test_ends_failed(uri, tmp_path):
    logger = DiaryLogger("Fraud detection", "MLP", uri=uri, save_dir=tmp_path)
    model = TinyModel(fail_in_test=True)
    tr = trainer(logger)
    tr.fit(model, loader())
    with pytest.raises(RuntimeError, match="test set is corrupt"):
        tr.test(model, loader(seed=2))
    it = connect(uri).get_iteration(logger.iteration_id)
    assert it.status is IterationStatus.FAILED and it.error_message == "RuntimeError: test set is corrupt"


def test_parent_iteration_makes_the_run_a_child(uri, tmp_path):
    tracker = connect(uri)
    project_id, _ = tracker.create_project("Fraud detection")
    experiment_id, _ = tracker.create_experiment(project_id, 1, "sweep")
    driver, _ = tracker.create_iteration(experiment_id)
    for lr in (0.01, 0.1):
        logger = DiaryLogger(project_id, experiment_id, uri=uri, parent_iteration_id=driver, save_dir=tmp_path)
        trainer(logger, max_epochs=1).fit(TinyModel(lr=lr), loader())
    children = tracker.get_child_iterations(driver)
    assert [c.status for c in children] == [IterationStatus.SUCCEEDED] * 2
    assert [tracker.get_parameters(c.id)[0].value for c in children] == ["0.01", "0.1"]
    assert tracker.get_environment(children[0].id) is None  # children skip the snapshot


@pytest.mark.parametrize("log_model", [True, "all"])
def test_log_model_stores_checkpoints_as_resources(uri, tmp_path, log_model):
    from pytorch_lightning.callbacks import ModelCheckpoint

    logger = DiaryLogger("Fraud detection", "MLP", uri=uri, save_dir=tmp_path, log_model=log_model)
    checkpoint = ModelCheckpoint(monitor="val_loss", save_top_k=-1 if log_model == "all" else 1)
    trainer(logger, enable_checkpointing=True, callbacks=[checkpoint]).fit(TinyModel(), loader(), loader(seed=1))

    tracker = connect(uri)
    it = tracker.get_iteration(logger.iteration_id)
    assert it.status is IterationStatus.SUCCEEDED
    assert Path(checkpoint.best_model_path).parent == Path(logger.log_dir) / "checkpoints"
    resources = tracker.get_resources(it.experiment_id)
    saved = sorted(Path(checkpoint.dirpath).glob("*.ckpt"))
    assert len(resources) == (2 if log_model == "all" else 1) == len(saved)
    params = {p.key: p.value for p in tracker.get_parameters(it.id)}
    assert params["checkpoint/best_path"] == checkpoint.best_model_path
    assert params["checkpoint/monitor"] == "val_loss"
    best = tracker.get_resource(int(params["checkpoint/best_resource_id"]))
    assert best.name == f"iteration-{it.id}/checkpoints/{Path(checkpoint.best_model_path).name}"
    assert tracker.get_resource_data(best.id) == Path(checkpoint.best_model_path).read_bytes()
    [(_, score)] = series(tracker, it.id, "checkpoint/best_score")
    assert score == pytest.approx(float(checkpoint.best_model_score))


def test_per_rank_in_one_process_gives_a_driver_and_a_rank_child(uri, tmp_path, monkeypatch):
    monkeypatch.delenv("DIARY_DRIVER_ITERATION_ID", raising=False)
    logger = DiaryLogger("Fraud detection", "MLP", uri=uri, save_dir=tmp_path, per_rank=True)
    trainer(logger, max_epochs=1).fit(TinyModel(), loader())
    tracker = connect(uri)
    driver = tracker.get_iteration(logger.iteration_id)
    [child] = tracker.get_child_iterations(driver.id)
    assert child.id == logger.rank_iteration_id
    assert driver.status is child.status is IterationStatus.SUCCEEDED
    assert {p.key: p.value for p in tracker.get_parameters(child.id)} == {
        "rank": "0", "world_size": "1", "node_rank": "0", "local_rank": "0",
    }
    assert "lr" in {p.key for p in tracker.get_parameters(driver.id)}
    assert len(series(tracker, child.id, "train_loss")) == len(series(tracker, driver.id, "train_loss")) == 4


def test_bad_input_is_refused_and_writes_nothing(tmp_path):
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    with pytest.raises(Unprocessable, match="project must not be empty") as err:
        DiaryLogger("", "MLP", uri=uri)
    assert err.value.field == "project"
    with pytest.raises(Unprocessable, match="log_model must be False, True or 'all'"):
        DiaryLogger("P", "MLP", uri=uri, log_model="best")
    with pytest.raises(Unprocessable, match="parent_iteration_id must be a positive integer id"):
        DiaryLogger("P", "MLP", uri=uri, parent_iteration_id="7")
    with pytest.raises(Unprocessable, match="uri must be a string or a path, got int") as err:
        DiaryLogger("P", "MLP", uri=5432)  # was a bare TypeError from os.fspath
    assert err.value.field == "uri"
    with pytest.raises(Unprocessable, match="sidecar must be true or false, got 'yes'") as err:
        DiaryLogger("P", "MLP", uri=uri, sidecar="yes")
    assert err.value.field == "sidecar"
    logger = DiaryLogger("P", "MLP", uri=uri)
    with pytest.raises(Unprocessable, match=r"metrics\['acc'\] must be a real number") as err:
        logger.log_metrics({"loss": 0.5, "acc": "high"}, step=0)
    assert err.value.field == "metrics['acc']"
    with pytest.raises(Unprocessable, match="step must be a non-negative"):
        logger.log_metrics({"loss": 0.5}, step=-1)
    with pytest.raises(Unprocessable, match="single number"):
        logger.log_metrics({"loss": torch.ones(3)}, step=0)
    logger.finalize("success")
    # Only the run's system readings (system/...), none of the refused values.
    assert [m for m in connect(uri).get_metrics(logger.iteration_id) if not m.key.startswith("system/")] == []


def test_log_metrics_outside_a_trainer(tmp_path):
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    logger = DiaryLogger("P", "MLP", uri=uri, batch_size=7)
    for step in range(100):
        logger.log_metrics({"loss": torch.tensor(1.0 / (step + 1)), "lr": 0.1}, step=step)
    logger.log_metrics({"lr": 0.01})  # no step: the key's next one
    logger.finalize("success")
    tracker = connect(uri)
    loss = series(tracker, logger.iteration_id, "loss")
    assert [s for s, _ in loss] == list(range(100)) and loss[3][1] == pytest.approx(0.25)
    assert series(tracker, logger.iteration_id, "lr")[-1] == (100, 0.01)


def test_flatten_hyperparameters():
    called = []

    def schedule():
        called.append(1)
        return 3

    flat = flatten_hyperparameters({
        "lr": 1e-3,
        "opt": Namespace(momentum=0.9, nesterov=True),
        "sched": {"name": "cos", "warmup": {"steps": 5}},
        "loaders": [{"a": 1}, {"a": 2}],
        "sizes": [4, 8],
        "fn": schedule,
        "scale": torch.tensor(2.5),
        "empty": {},
    })
    assert flat == {
        "lr": 0.001, "opt/momentum": 0.9, "opt/nesterov": True, "sched/name": "cos", "sched/warmup/steps": 5,
        "loaders/0/a": 1, "loaders/1/a": 2, "sizes": "[4, 8]",
        "fn": f"{__name__}.test_flatten_hyperparameters.<locals>.schedule", "scale": 2.5, "empty": "{}",
    }
    assert called == []  # callables are named, never called
    assert flatten_hyperparameters(None) == {}
    with pytest.raises(Unprocessable, match="params must be a dict"):
        flatten_hyperparameters([1, 2])  # type: ignore[arg-type]
