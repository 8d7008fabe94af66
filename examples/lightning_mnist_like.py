"""Train a small classifier on a synthetic MNIST-like dataset (8x8 "digits", 10 classes) with a
DiaryLogger: hyperparameters become parameters, metrics a series per global step, the best checkpoint
a resource, and the run's status tells the truth. Trains in seconds on CPU, on the embedded SQLite
default (./deardiary.db, or $DIARY_TRACKING_URI).

    python examples/lightning_mnist_like.py [URI]
"""

from __future__ import annotations

import sys
import tempfile

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

try:
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint
except ImportError:
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint

from diary_integrations.lightning import DiaryLogger


def digits(n: int, seed: int) -> TensorDataset:
    """Each class is a fixed random 8x8 template; samples are noisy copies of their class's template."""
    templates = torch.randn(10, 64, generator=torch.Generator().manual_seed(1234))
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=generator)
    images = templates[labels] + 3.0 * torch.randn(n, 64, generator=generator)
    return TensorDataset(images, labels)


class DigitClassifier(pl.LightningModule):
    def __init__(self, hidden: int = 32, lr: float = 3e-3, optimizer: dict | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()  # nested dicts arrive as "optimizer/name", "optimizer/betas"
        self.net = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def training_step(self, batch, batch_idx):
        images, labels = batch
        loss = F.cross_entropy(self.net(images), labels)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        images, labels = batch
        logits = self.net(images)
        self.log("val_loss", F.cross_entropy(logits, labels))
        self.log("val_acc", (logits.argmax(dim=1) == labels).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main() -> None:
    uri = sys.argv[1] if len(sys.argv) > 1 else None
    logger = DiaryLogger("Examples", "MNIST-like MLP", uri=uri, log_model=True)
    checkpoint = ModelCheckpoint(monitor="val_acc", mode="max")
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=3, log_every_n_steps=5, logger=logger, callbacks=[checkpoint],
        enable_progress_bar=False, enable_model_summary=False,
        # Checkpoint files are scratch: log_model=True stores the best one in the tracker as a resource.
        default_root_dir=tempfile.mkdtemp(prefix="mnist-like-checkpoints-"),
    )
    model = DigitClassifier(optimizer={"name": "adam", "betas": [0.9, 0.999]})
    trainer.fit(model, DataLoader(digits(1024, seed=0), batch_size=64, shuffle=True),
                DataLoader(digits(256, seed=1), batch_size=256))

    tracker = logger.experiment
    run = tracker.get_iteration(logger.iteration_id)
    params = {p.key: p.value for p in tracker.get_parameters(run.id)}
    accuracy = tracker.get_metrics(run.id, key="val_acc")
    print(f"iteration {run.id}: {run.status.name}")
    print(f"parameters: lr={params['lr']} hidden={params['hidden']} optimizer/name={params['optimizer/name']}")
    print("val_acc by step: " + ", ".join(f"{m.step}: {m.value:.3f}" for m in accuracy))
    best = tracker.get_resource(int(params["checkpoint/best_resource_id"]))
    print(f"best checkpoint: resource {best.id} {best.name} ({best.size_bytes} bytes) - {best.description}")


if __name__ == "__main__":
    main()
