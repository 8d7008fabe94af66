"""Libraries that log through MLflow, unchanged, against a real `diary server`: scikit-learn's autolog on
a GridSearchCV (its parent and child runs become a driver and its children) and Lightning's
MLFlowLogger (fit, then test, into one run)."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow_helpers import MlflowServer, series

from diary_integrations import IterationStatus


def test_sklearn_autolog_grid_search_is_a_driver_with_children(mlflow_server: MlflowServer) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    y = (x[:, 0] + 0.3 * rng.normal(size=60) > 0).astype(int)
    mlflow.set_experiment("grid")
    mlflow.sklearn.autolog(log_models=False, log_datasets=False, silent=True)
    try:
        with mlflow.start_run(run_name="search") as parent:
            GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0, 10.0]}, cv=2).fit(x, y)
    finally:
        mlflow.sklearn.autolog(disable=True)

    diary = mlflow_server.diary
    driver = diary.get_iteration(int(parent.info.run_id))
    children = diary.get_child_iterations(driver.id)
    assert driver.status is IterationStatus.SUCCEEDED and driver.parent_iteration_id is None
    assert len(children) == 3
    assert all(c.status is IterationStatus.SUCCEEDED and c.experiment_id == driver.experiment_id for c in children)
    values = diary.get_parameter_values([c.id for c in children])
    assert sorted(float(p["C"]) for p in values.values()) == [0.1, 1.0, 10.0]
    assert {p.key for p in diary.get_parameters(driver.id)} >= {"estimator", "cv", "best_C"}
    child_runs = MlflowClient().search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert sorted(r.info.run_id for r in child_runs) == sorted(str(c.id) for c in children)
    assert all("mean_test_score" in r.data.metrics for r in child_runs)


def test_lightning_mlflow_logger_fit_and_test(mlflow_server: MlflowServer, tmp_path) -> None:
    torch = pytest.importorskip("torch")
    try:
        import pytorch_lightning as pl
        from pytorch_lightning.loggers import MLFlowLogger
    except ImportError:  # pragma: no cover - the unified package
        import lightning.pytorch as pl
        from lightning.pytorch.loggers import MLFlowLogger
    from torch.utils.data import DataLoader, TensorDataset

    class Tiny(pl.LightningModule):
        def __init__(self, lr: float = 0.05) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, _index):
            loss = torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1])
            self.log("train_loss", loss)
            return loss

        def test_step(self, batch, _index):
            self.log("test_loss", torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1]))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    torch.manual_seed(0)
    x = torch.randn(64, 4)
    data = DataLoader(TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=8)
    logger = MLFlowLogger(experiment_name="lightning", tracking_uri=mlflow_server.url, run_name="tiny")
    trainer = pl.Trainer(
        max_epochs=2,
        logger=logger,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    model = Tiny()
    trainer.fit(model, data)
    trainer.test(model, data, verbose=False)

    diary = mlflow_server.diary
    run = diary.get_iteration(int(logger.run_id))
    assert run.status is IterationStatus.SUCCEEDED and run.name == "tiny"
    steps = [step for step, _ in series(diary, logger.run_id, "train_loss")]
    assert steps == sorted(steps) and len(steps) == 16  # 8 batches x 2 epochs, each logged once
    assert len(series(diary, logger.run_id, "test_loss")) == 1
    assert {p.key: p.value for p in diary.get_parameters(run.id)}["lr"] == "0.05"
    assert MlflowClient(mlflow_server.url).get_run(logger.run_id).info.status == "FINISHED"
