"""DiaryLogger's arguments, checked when it is built: a bad one is refused there, naming the field and the
rule, not later inside `trainer.fit`."""

from __future__ import annotations

import os
from typing import Any

from ..resolve import check_name_or_id
from ..tracker.errors import Unprocessable
from .resume import check_version


def check_options(
    project: Any,
    experiment: Any,
    *,
    uri: Any,
    tracker: Any,
    parent_iteration_id: Any,
    per_rank: Any,
    open_in_background: Any,
    sidecar: Any,
    log_model: Any,
    save_dir: Any,
    notes: Any,
    prefix: Any,
    version: Any,
    resume: Any,
    run_key: Any,
    batch_size: Any,
    max_pending_batches: Any,
    write_retries: Any,
    register_as: Any,
    system_metrics: Any = True,
    system_metrics_interval: Any = 10.0,
    **_unchecked: Any,
) -> tuple[int | None, str | None]:
    """Every rule DiaryLogger's arguments follow; returns `version` as an iteration id (or None) and `uri`
    as text (or None)."""
    # The model registry (registry.py): the best checkpoint of a SUCCEEDED fit becomes a model version.
    if register_as is not None and not (log_model and isinstance(register_as, str) and register_as.strip()):
        raise Unprocessable("register_as needs log_model and a non-empty model name", field="register_as")
    from .. import system_metrics as system

    system.check_options(system_metrics, system_metrics_interval)
    check_name_or_id(project, "project")
    check_name_or_id(experiment, "experiment")
    if parent_iteration_id is not None:
        check_name_or_id(parent_iteration_id, "parent_iteration_id", names=False)
    for field, value in (("per_rank", per_rank), ("open_in_background", open_in_background), ("sidecar", sidecar)):
        if not isinstance(value, bool):
            raise Unprocessable(f"{field} must be true or false, got {value!r}", field=field)
    if not (isinstance(log_model, bool) or log_model == "all"):
        raise Unprocessable(f"log_model must be False, True or 'all', got {log_model!r}", field="log_model")
    if save_dir is not None and not isinstance(save_dir, (str, os.PathLike)):
        raise Unprocessable(f"save_dir must be a path, got {type(save_dir).__name__}", field="save_dir")
    for field, value in (("notes", notes), ("prefix", prefix)):
        if not isinstance(value, str):
            raise Unprocessable(f"{field} must be a string, got {type(value).__name__}", field=field)
    if resume not in ("never", "auto"):
        raise Unprocessable(f"resume must be 'never' or 'auto', got {resume!r}", field="resume")
    if run_key is not None and not (isinstance(run_key, str) and run_key.strip()):
        raise Unprocessable(f"run_key must be a non-empty string, got {run_key!r}", field="run_key")
    if run_key is not None and resume != "auto":
        raise Unprocessable("run_key is used only with resume='auto'", field="run_key")
    if version is not None and resume == "auto":
        raise Unprocessable("give either version= or resume='auto', not both", field="version")
    for field, value in (("batch_size", batch_size), ("max_pending_batches", max_pending_batches)):
        if not (isinstance(value, int) and value >= 1):
            raise Unprocessable(f"{field} must be a positive integer, got {value!r}", field=field)
    if not (isinstance(write_retries, int) and not isinstance(write_retries, bool) and write_retries >= 0):
        raise Unprocessable(
            f"write_retries must be a non-negative integer, got {write_retries!r}", field="write_retries"
        )
    checked_version = check_version(version)
    from ..resolve import uri_argument  # lazily, as the URI check below: importing the package stays cheap

    text = uri_argument(uri)
    if tracker is None:  # a bad URI is refused here, not inside trainer.fit
        from ..connection import check_uri, resolve_uri

        check_uri(resolve_uri(text))
    return checked_version, text
