"""A tiny LightningModule and data for the logger tests (imported by the tests and the DDP scripts)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

try:
    import pytorch_lightning as pl
except ImportError:  # pragma: no cover - the unified package
    import lightning.pytorch as pl


class TinyModel(pl.LightningModule):
    """Linear regression on 4 features; can raise (or be interrupted) at a chosen step and rank."""

    def __init__(
        self,
        lr: float = 0.1,
        optimizer: dict | None = None,
        fail_at_step: int | None = None,
        fail_rank: int | None = None,
        interrupt_at_step: int | None = None,
        fail_in_test: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        hp = self.hparams
        at_step = hp.fail_at_step is not None and self.global_step == hp.fail_at_step
        if at_step and (hp.fail_rank is None or self.global_rank == hp.fail_rank):
            raise ValueError(f"boom at step {self.global_step} on rank {self.global_rank}")
        if hp.interrupt_at_step is not None and self.global_step == hp.interrupt_at_step:
            raise KeyboardInterrupt
        x, y = batch
        loss = F.mse_loss(self.layer(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self.layer(x), y), sync_dist=True)

    def test_step(self, batch, batch_idx):
        if self.hparams.fail_in_test:
            raise RuntimeError("test set is corrupt")
        x, y = batch
        self.log("test_loss", F.mse_loss(self.layer(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def loader(n: int = 32, batch_size: int = 8, seed: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1
    return DataLoader(TensorDataset(x, y), batch_size=batch_size)


def trainer(logger, **overrides) -> pl.Trainer:
    """A quiet CPU trainer that logs every step."""
    options = dict(
        accelerator="cpu", devices=1, max_epochs=2, log_every_n_steps=1, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0, logger=logger,
    )
    options.update(overrides)
    return pl.Trainer(**options)
