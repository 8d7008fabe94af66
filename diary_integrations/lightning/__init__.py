"""DiaryLogger: a PyTorch Lightning logger that writes one iteration per run (and, with `per_rank=True`,
one child iteration per DDP rank under a driver iteration).

    logger = DiaryLogger(project="Fraud detection", experiment="MLP", uri="sqlite:///runs.db")
    trainer = pl.Trainer(max_epochs=5, logger=logger)
    trainer.fit(model, datamodule)
    logger.iteration_id

Hyperparameters become parameters, metrics a series per key by global step, checkpoints resources on
request, and `finalize` a truthful status. The run is opened off the training thread and metrics are
written by a background thread, so the training step never waits on storage. `version=` and
`resume="auto"` continue an earlier (requeued) run. Works with `pytorch_lightning` or `lightning`.
"""

from __future__ import annotations

from ..reporting import TrackingWarning
from .logger import DiaryLogger
from .params import flatten_hyperparameters

__all__ = ["DiaryLogger", "TrackingWarning", "flatten_hyperparameters"]
