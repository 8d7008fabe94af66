"""`Trainer.hyperparameter_search(backend="ray")`: Transformers hands the search's keyword arguments to
`tune.run`, so the Ray Tune integration's own DiaryCallback (diary_integrations/ray/) joins its
`callbacks`: the search is that callback's driver iteration and each trial its child (the config, every
reported result with the objective, FAILED with the trial's text, KILLED when a scheduler stopped it),
the best trial by "objective" in the search's direction on the driver. Nothing is recorded twice: each
trial's `train()` runs in a Ray worker with a copy of the Transformers callback, whose run nests under the
trial's child by itself (enclosing.py)."""

from __future__ import annotations

from typing import Any

OBJECTIVE = "objective"  # what Transformers reports to Tune and ranks its trials by
STOPPED = "stopped by Ray Tune before train() finished (its scheduler, or the experiment's end)"


def stopped_by_tune(exc: BaseException | None, trial: Any) -> bool:
    """True when a ray-backend trial's `train()` ended with the SystemExit Ray Tune raises in a trial's
    thread to stop it (`tune.report` after a STOP decision); a Ray trial is handed in as its config dict."""
    return isinstance(trial, dict) and isinstance(exc, SystemExit) and exc.code in (0, None)


def backend_name(backend: Any) -> str:
    """The search backend's name ("optuna", "ray", ...), Transformers' default one when none is given."""
    if backend is None:
        try:
            from transformers.hyperparameter_search import default_hp_search_backend

            backend = default_hp_search_backend()
        except Exception:  # noqa: BLE001 - no backend installed: the search itself says so
            return ""
    return str(getattr(backend, "value", backend)).lower()


def mode_of(direction: Any) -> str | None:
    """Tune's mode for Transformers' direction ("minimize" -> "min"); None for several objectives."""
    return direction[:3] if direction in ("minimize", "maximize") else None


def join_tune_run(extra: dict[str, Any], project: str, experiment: str, uri: Any, *, sidecar: bool,
                  direction: Any) -> Any:
    """The Ray Tune DiaryCallback recording this search, added to the `callbacks` `tune.run` is given
    (the one the user passed there already, if any)."""
    from ..ray import DiaryCallback as TuneCallback

    callbacks = list(extra.get("callbacks") or [])
    for known in callbacks:
        if isinstance(known, TuneCallback):
            return known
    mode = mode_of(direction)
    recorder = TuneCallback(project, experiment, None if uri is None else str(uri), sidecar=sidecar,
                            metric=OBJECTIVE if mode else None, mode=mode)
    extra["callbacks"] = [*callbacks, recorder]
    return recorder
