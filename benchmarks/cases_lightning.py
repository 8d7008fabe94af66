"""Lightning cases: a tiny model trained 2000 steps logging every step, with no logger, Lightning's own
loggers and DiaryLogger; and the training thread's cost of one `log_metrics` call."""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from pathlib import Path

from .harness import Case, Comparison, Limit
from .peers import quiet_mlflow


def _quiet() -> None:
    warnings.filterwarnings("ignore")
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    quiet_mlflow()


def _module_and_data(steps: int):  # type: ignore[no-untyped-def]
    import pytorch_lightning as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    class Tiny(pl.LightningModule):
        def __init__(self, lr: float = 0.05) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))

        def training_step(self, batch, _index):  # type: ignore[no-untyped-def]
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):  # type: ignore[no-untyped-def]
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(steps * 8, 16, generator=generator)
    y = x.sum(dim=1, keepdim=True)
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=False)
    return Tiny(), loader


def _fit(logger_factory, steps: int) -> float:  # type: ignore[no-untyped-def]
    import pytorch_lightning as pl

    _quiet()
    model, loader = _module_and_data(steps)
    logger = logger_factory()
    trainer = pl.Trainer(
        max_steps=steps, logger=logger, log_every_n_steps=1, accelerator="cpu", devices=1,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=tempfile.mkdtemp(prefix="diary-bench-pl-"),
    )
    start = time.perf_counter()
    trainer.fit(model, loader)
    return time.perf_counter() - start


def _csv():  # type: ignore[no-untyped-def]
    from pytorch_lightning.loggers import CSVLogger

    return CSVLogger(tempfile.mkdtemp(prefix="diary-bench-csv-"))


def _mlflow_file():  # type: ignore[no-untyped-def]
    from pytorch_lightning.loggers import MLFlowLogger

    return MLFlowLogger(experiment_name="bench", tracking_uri=f"file:{tempfile.mkdtemp(prefix='diary-bench-mlf-')}")


def _mlflow_sqlite():  # type: ignore[no-untyped-def]
    from pytorch_lightning.loggers import MLFlowLogger

    directory = Path(tempfile.mkdtemp(prefix="diary-bench-mls-"))
    return MLFlowLogger(experiment_name="bench", tracking_uri=f"sqlite:///{directory / 'mlflow.db'}")


_DIARY_DIR = Path(tempfile.mkdtemp(prefix="diary-bench-dl-"))


def _diary_sqlite():  # type: ignore[no-untyped-def]
    """A DiaryLogger on a database that already exists, as for every run after a user's first (creating
    and migrating a new database is a one-off; MLflow's happens in its logger's constructor, untimed)."""
    from diary_integrations import LocalTracker
    from diary_integrations.lightning import DiaryLogger

    url = f"sqlite:///{_DIARY_DIR / 'diary.db'}"
    LocalTracker(url).get_user("default")
    return DiaryLogger(project="bench", experiment="tiny", uri=url, save_dir=_DIARY_DIR)


def lightning_wall_time(quick: bool) -> Case:
    steps = 50 if quick else 2000
    variants = {
        "no logger": lambda: _fit(lambda: False, steps),
        "CSVLogger": lambda: _fit(_csv, steps),
        "MLFlowLogger (file)": lambda: _fit(_mlflow_file, steps),
        "MLFlowLogger (SQLite)": lambda: _fit(_mlflow_sqlite, steps),
        "DiaryLogger (SQLite)": lambda: _fit(_diary_sqlite, steps),
    }
    comparisons = [
        Comparison("DiaryLogger (SQLite) / no logger", "DiaryLogger (SQLite)", "no logger", 1.10, "lower"),
        Comparison("CSVLogger / no logger", "CSVLogger", "no logger", None, "lower"),
        Comparison("MLFlowLogger (file) / no logger", "MLFlowLogger (file)", "no logger", None, "lower"),
        Comparison("MLFlowLogger (SQLite) / no logger", "MLFlowLogger (SQLite)", "no logger", None, "lower"),
    ]
    try:
        from .server_process import diary_server

        def diary_server_variant() -> float:
            from diary_integrations.lightning import DiaryLogger

            url = diary_server()
            return _fit(lambda: DiaryLogger(project="bench", experiment="tiny", uri=url,
                                            save_dir=tempfile.mkdtemp(prefix="diary-bench-dls-")), steps)

        variants["DiaryLogger (local server)"] = diary_server_variant
        comparisons.insert(
            1, Comparison("DiaryLogger (local server) / no logger", "DiaryLogger (local server)", "no logger", 1.10,
                          "lower"),
        )
    except ImportError:
        pass
    return Case(
        name="Lightning: tiny model, logging every step",
        description=(
            f"`Trainer.fit` wall time of a tiny MLP for {steps:,} steps with `log_every_n_steps=1` (one metric "
            "per step), checkpointing and progress bar off, on the CPU; each logger against the same run with "
            "no logger."
        ),
        unit="s",
        variants=variants,
        comparisons=comparisons,
        repeats=3 if quick else 5,
    )


def _per_call(logger, calls: int) -> float:  # type: ignore[no-untyped-def]
    """Seconds per `log_metrics` + `save()` pair on the calling thread (what the Trainer does per log)."""
    logger.log_metrics({"train_loss": 1.0, "epoch": 0}, step=0)  # let lazy set-up happen first
    logger.save()
    start = time.perf_counter()
    for step in range(1, calls + 1):
        logger.log_metrics({"train_loss": 1.0 / step, "epoch": 0}, step=step)
        logger.save()
    elapsed = time.perf_counter() - start
    logger.finalize("success")
    return elapsed / calls


def log_metrics_call(quick: bool) -> Case:
    calls = 2_000 if quick else 20_000
    _quiet()
    return Case(
        name="Lightning: the training thread's cost of one log_metrics call",
        description=(
            f"{calls:,} calls of `log_metrics({{train_loss, epoch}}, step)` followed by `save()`, as the Trainer "
            "makes them, timed on the calling thread; DiaryLogger's background writer does the storage."
        ),
        unit="s",
        variants={
            "DiaryLogger (SQLite)": lambda: _per_call(_diary_sqlite(), calls),
            "CSVLogger": lambda: _per_call(_csv(), calls),
            "MLFlowLogger (file)": lambda: _per_call(_mlflow_file(), calls // 10),
        },
        comparisons=[
            Comparison("CSVLogger / DiaryLogger per call", "CSVLogger", "DiaryLogger (SQLite)", None, "higher"),
            Comparison("MLFlowLogger (file) / DiaryLogger per call", "MLFlowLogger (file)", "DiaryLogger (SQLite)",
                       None, "higher"),
        ],
        repeats=3,
        limits=[Limit("DiaryLogger per call", "DiaryLogger (SQLite)", 20e-6, "lower")],
    )


CASES = [lightning_wall_time, log_metrics_call]
