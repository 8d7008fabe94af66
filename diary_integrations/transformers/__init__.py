"""Hugging Face Transformers integration: `DiaryCallback`, a `TrainerCallback` that records one iteration
per `train()` (parameters, every log by global step, a truthful end, checkpoints on request) and, under
`Trainer.hyperparameter_search(backend="optuna")`, a driver for the search with a child per trial.

    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=test,
                      callbacks=[DiaryCallback("Fraud detection", "BERT", uri="runs.db")])
    trainer.train()
"""

from __future__ import annotations

from .callback import DiaryCallback

__all__ = ["DiaryCallback"]
