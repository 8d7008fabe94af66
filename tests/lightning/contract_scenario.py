"""Lightning runs in their own process for the contract tests.

    python contract_scenario.py rank_zero URI        # 2 ddp_spawn ranks: `experiment` is a dummy on rank 1
    python contract_scenario.py requeue URI DIR      # resume="auto" keyed on $SLURM_JOB_ID; with
                                                     # $KILL_AT_STEP the process SIGKILLs itself there

`requeue` trains 12 steps with a checkpoint every 2 steps under DIR (save_dir) and resumes from the
checkpoint the logger found (`logger.resumed_from`), as a requeued SLURM job's script would.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from diary_models import TinyModel, loader, pl, trainer  # noqa: E402

from diary_integrations.lightning import DiaryLogger  # noqa: E402

try:
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.loggers.logger import DummyExperiment
except ImportError:  # pragma: no cover - the unified package
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers.logger import DummyExperiment


class RankZeroExperiment(pl.Callback):
    """Lightning's own check: the real experiment on rank 0 only; the README idiom works on every rank."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        experiment = pl_module.logger.experiment
        assert isinstance(experiment, DummyExperiment) is (trainer.global_rank > 0), trainer.global_rank
        experiment.create_metric(
            pl_module.logger.iteration_id, "custom", float(trainer.global_rank), step=trainer.global_step
        )
        print(f"RANK {trainer.global_rank} OK", flush=True)


class KillAt(pl.Callback):
    """SIGKILL this process when training reaches a step: no finalize, no atexit, as a preemption."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def rank_zero(uri: str) -> None:
    logger = DiaryLogger("Contract", "ranks", uri=uri, save_dir="logs")
    tr = trainer(logger, devices=2, strategy="ddp_spawn", max_epochs=1, callbacks=[RankZeroExperiment()])
    tr.fit(TinyModel(), loader(32))


def requeue(uri: str, directory: str) -> None:
    logger = DiaryLogger("Contract", "requeue", uri=uri, save_dir=directory, resume="auto", flush_interval=0.2)
    kill_at = os.environ.get("KILL_AT_STEP")
    callbacks = [ModelCheckpoint(every_n_train_steps=2, save_top_k=-1, save_last=True)]
    if kill_at:
        callbacks.append(KillAt(int(kill_at)))
    print(f"ITERATION {logger.iteration_id} FROM {logger.resumed_from}", flush=True)
    tr = trainer(logger, max_epochs=3, enable_checkpointing=True, callbacks=callbacks)
    tr.fit(TinyModel(), loader(32), ckpt_path=logger.resumed_from)  # 3 epochs of 4 batches


if __name__ == "__main__":
    if sys.argv[1] == "rank_zero":
        rank_zero(sys.argv[2])
    else:
        requeue(sys.argv[2], sys.argv[3])
