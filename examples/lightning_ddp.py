"""Distributed data-parallel training on 2 CPU processes (gloo) with one iteration per rank: a driver
iteration (rank 0's: the hyperparameters and rank 0's metrics) and a child iteration per rank with that
rank's own metrics. Writes to the embedded SQLite default (./deardiary.db, or $DIARY_TRACKING_URI).

    python examples/lightning_ddp.py [URI]

Lightning starts rank 1 by re-running this script; the driver id reaches it through the environment.
"""

from __future__ import annotations

import sys

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

try:
    import pytorch_lightning as pl
except ImportError:
    import lightning.pytorch as pl

from diary_integrations.cli.tree import format_tree
from diary_integrations.lightning import DiaryLogger


class Regressor(pl.LightningModule):
    def __init__(self, lr: float = 0.05, hidden: int = 8) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self.net(x), y)
        self.log("train_loss", loss)  # each rank's own value, in its own child iteration
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self.net(x), y), sync_dist=True)  # the same on every rank

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def data(n: int, seed: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    return DataLoader(TensorDataset(x, y), batch_size=8)


def main() -> None:
    uri = sys.argv[1] if len(sys.argv) > 1 else None
    logger = DiaryLogger("Examples", "DDP on CPU", uri=uri, per_rank=True)
    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", max_epochs=2, log_every_n_steps=1,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
        num_sanity_val_steps=0, logger=logger,
    )
    trainer.fit(Regressor(), data(64, seed=0), data(32, seed=1))
    if trainer.is_global_zero:
        print(f"driver iteration {logger.iteration_id}; this rank's child {logger.rank_iteration_id}")
        print(format_tree(logger.experiment, logger.experiment_id, metrics=["train_loss", "val_loss"]))


if __name__ == "__main__":
    main()
