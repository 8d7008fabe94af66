"""Checkpoints as resources (`log_model`): a Trainer checkpoint is a directory; what loads the model again
(its config and weights, not the optimizer's or scheduler's state) is stored as one zip file."""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

# Files of a checkpoint directory that resume training but are not the model: left out of the zip.
_TRAINING_STATE = ("optimizer", "scheduler", "rng_state", "trainer_state", "training_args", "scaler")


def model_files(directory: Path) -> list[Path]:
    """The files of a checkpoint (or `save_pretrained`) directory that make up the model."""
    return sorted(
        p for p in directory.iterdir() if p.is_file() and not p.name.startswith(_TRAINING_STATE)
    )


def zipped(directory: str | os.PathLike[str]) -> bytes:
    """The model files of `directory` as one zip file's bytes (names relative to the directory)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in model_files(Path(directory)):
            archive.write(file, arcname=file.name)
    return buffer.getvalue()


def checkpoint_dir(args: Any, state: Any) -> Path | None:
    """The checkpoint the Trainer saved at this global step (`output_dir/checkpoint-N`), if it exists."""
    path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
    return path if path.is_dir() else None


def final_model(args: Any, state: Any, model: Any) -> tuple[bytes, str] | None:
    """What `log_model=True` stores at a clean end: the best checkpoint when the Trainer tracked one
    (`load_best_model_at_end`), else the last saved one, else the model as it is now."""
    best = state.best_model_checkpoint
    if best and Path(best).is_dir():
        return zipped(best), f"{Path(best).name}.zip"
    saved = checkpoint_dir(args, state)
    if saved is not None:
        return zipped(saved), f"{saved.name}.zip"
    save_pretrained = getattr(model, "save_pretrained", None)
    if not callable(save_pretrained):
        return None
    with tempfile.TemporaryDirectory(prefix="diary-model-") as folder:
        save_pretrained(folder)
        return zipped(folder), f"model-step-{state.global_step}.zip"
