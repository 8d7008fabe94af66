"""Checkpoints: stored as resources on request (`log_model`), the best one recorded, the newest one found
for a resumed run, and the metrics flushed when one is saved (so a resume from it loses nothing)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..reporting import warn_tracking
from ..tracker.errors import Conflict

if TYPE_CHECKING:
    from .state import LoggerState

log = logging.getLogger("diary_integrations")


def store_at_end(lg: LoggerState, exc: BaseException | None) -> None:
    """`log_model` at the end of a run: the checkpoints become resources, the best one is recorded (and
    registered after a success). Checkpoints that cannot be stored (the server is away) are a warning
    here: the run's end comes next and must still be written, or the run would stay RUNNING until
    reaped as KILLED, which is false."""
    try:
        store_checkpoints(lg, best_only=lg._log_model is True)
        record_best_checkpoint(lg)
    except Exception as error:  # noqa: BLE001 - the end comes next whatever happens here
        warn_tracking(f"iteration {lg._run_id}: the checkpoints could not be stored", error, logger=log, stacklevel=5)
        return
    if lg._register_as is not None and exc is None:
        register_best_checkpoint(lg)


def store_checkpoints(lg: LoggerState, *, best_only: bool) -> None:
    """Copy checkpoint files into resources of the experiment, each file version once."""
    callback = lg._checkpoint_callback
    paths = [getattr(callback, "best_model_path", "")]
    if not best_only:
        paths += list(getattr(callback, "best_k_models", {}) or {})
        paths.append(getattr(callback, "last_model_path", ""))
    for path in dict.fromkeys(p for p in paths if p):
        file = Path(path)
        if not file.is_file():
            continue
        version = (str(file.resolve()), file.stat().st_mtime_ns)
        if version in lg._stored_checkpoints:
            continue
        score = score_of(callback, path)
        description = f"checkpoint of iteration {lg._run_id}"
        if score is not None and getattr(callback, "monitor", None):
            description += f" ({callback.monitor}={score:g})"
        resource_id = lg.tracker.create_resource(
            lg._resolve_experiment(),
            f"iteration-{lg._run_id}/checkpoints/{file.name}",
            file,
            description=description,
        ).id
        lg._stored_checkpoints[version] = resource_id


def record_best_checkpoint(lg: LoggerState) -> None:
    """The best checkpoint's path, monitor and resource as parameters, its score as a metric."""
    callback = lg._checkpoint_callback
    best = getattr(callback, "best_model_path", "")
    if not best or not Path(best).is_file():
        return
    file = Path(best)
    resource_id = lg._stored_checkpoints.get((str(file.resolve()), file.stat().st_mtime_ns))
    params: dict[str, Any] = {"checkpoint/best_path": best}
    if getattr(callback, "monitor", None):
        params["checkpoint/monitor"] = callback.monitor
    if resource_id is not None:
        params["checkpoint/best_resource_id"] = resource_id
    try:
        lg.tracker.log_parameters(lg._run_id, params)
    except Conflict as error:  # a later entry point (or a resumed run) found a different best: keep the first
        log.warning("diary: best checkpoint not recorded again: %s", error)
    score = score_of(callback, best)
    if score is not None:
        step = max(lg._next_step.values(), default=1) - 1
        lg.tracker.log_metrics(lg._run_id, {"checkpoint/best_score": score}, step=max(step, 0))


def newest_checkpoint(log_dir: str | None) -> str | None:
    """The most recently written `*.ckpt` under `log_dir/checkpoints` (where ModelCheckpoint saves a
    run's checkpoints by default), or None."""
    if not log_dir:
        return None
    folder = Path(log_dir) / "checkpoints"
    if not folder.is_dir():
        return None
    found = [(p.stat().st_mtime_ns, str(p)) for p in folder.glob("*.ckpt") if p.is_file()]
    return max(found)[1] if found else None


def score_of(callback: Any, path: str) -> float | None:
    score = (getattr(callback, "best_k_models", {}) or {}).get(path)
    if score is None and path == getattr(callback, "best_model_path", None):
        score = getattr(callback, "best_model_score", None)
    if score is None:
        return None
    try:
        return float(score.item() if hasattr(score, "item") else score)
    except (TypeError, ValueError):
        return None


def register_best_checkpoint(lg: LoggerState) -> None:
    """`register_as`: the best checkpoint of a SUCCEEDED fit becomes the next version of that model
    (registry.py). A registration that fails is a warning: it must not keep the run from ending truthfully."""
    from ..registry import register_checkpoint

    best = getattr(lg._checkpoint_callback, "best_model_path", "")
    try:
        register_checkpoint(lg.tracker, lg._run_id, best, lg._register_as, stored=lg._stored_checkpoints)
    except Exception as error:  # noqa: BLE001
        log.warning("diary: best checkpoint not registered as %r: %s", lg._register_as, error)
