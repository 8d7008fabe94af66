"""One training run in a fresh process, as a user runs a training script:
`python -m benchmarks.fresh_run LOGGER DIR STEPS [URL]` (from the repository root), with the model and
data of the in-process Lightning case. Prints one JSON line: the time from calling `Trainer.fit` to the
first training step starting, and the time `fit` took, both from inside this process."""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings


def _logger(kind: str, directory: str, url: str | None):  # type: ignore[no-untyped-def]
    if kind == "none":
        return False
    if kind == "csv":
        from pytorch_lightning.loggers import CSVLogger

        return CSVLogger(directory)
    if kind == "tensorboard":
        from pytorch_lightning.loggers import TensorBoardLogger

        return TensorBoardLogger(directory)
    if kind == "mlflow":
        from pytorch_lightning.loggers import MLFlowLogger

        return MLFlowLogger(experiment_name="bench", tracking_uri=f"sqlite:///{directory}/mlflow.db")
    if kind == "wandb":
        from pytorch_lightning.loggers import WandbLogger

        return WandbLogger(project="bench", save_dir=directory, offline=True)
    if kind in ("diary", "diary-nosys", "diary-count"):
        from diary_integrations.lightning import DiaryLogger

        return DiaryLogger(project="bench", experiment="tiny", uri=url or f"sqlite:///{directory}/diary.db",
                           save_dir=directory, system_metrics=kind != "diary-nosys")
    raise SystemExit(f"unknown logger {kind!r}")


def main(kind: str, directory: str, steps: int, url: str | None) -> None:
    warnings.filterwarnings("ignore")
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric", "mlflow", "wandb"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import pytorch_lightning as pl

    from benchmarks.cases_lightning import _module_and_data

    first_step: list[float] = []

    class FirstStep(pl.Callback):
        def on_train_batch_start(self, *args):  # type: ignore[no-untyped-def]
            if not first_step:
                first_step.append(time.perf_counter())

    model, loader = _module_and_data(steps)
    trainer = pl.Trainer(
        max_steps=steps, logger=_logger(kind, directory, url), log_every_n_steps=1, accelerator="cpu", devices=1,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=directory, callbacks=[FirstStep()],
    )
    counter = _ReadingsOnThisThread() if kind == "diary-count" else None
    if counter is not None:  # measured, not assumed: every call into the sampler's reading code on this thread
        sys.setprofile(counter)
    start = time.perf_counter()
    trainer.fit(model, loader)
    end = time.perf_counter()
    sys.setprofile(None)
    out = {"first_step": first_step[0] - start, "fit": end - start}
    if counter is not None:
        out.update(calls=counter.calls, readings=_readings(trainer.logger))
    print(json.dumps(out), flush=True)


class _ReadingsOnThisThread:
    """A profile function (sys.setprofile is per thread: the training thread's only) counting calls into
    diary_integrations.system_metrics' reading code."""

    READING = {"_record", "read", "sample", "_counters", "_excluded", "_is_foreign", "_peak_rss_mib"}

    def __init__(self) -> None:
        import os

        import diary_integrations.system_metrics as package

        self.package = os.path.dirname(package.__file__)
        self.calls = 0

    def __call__(self, frame, event, arg):  # type: ignore[no-untyped-def]
        code = frame.f_code
        if event == "call" and code.co_name in self.READING and code.co_filename.startswith(self.package):
            self.calls += 1


def _readings(logger) -> int:  # type: ignore[no-untyped-def]
    """How many readings the run stored (proof that the sampler ran while nothing ran here)."""
    from diary_integrations import connect

    return len(connect(logger._uri).get_metrics(logger.iteration_id, key="system/proc.rss_mib"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
