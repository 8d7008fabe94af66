"""What a Tune callback is not told: the experiment's scheduler, searcher, metric and mode, where its state
lives, and which trials the scheduler stopped.

`Callback.setup` gets only the experiment's public spec (stop, num_samples). The TuneController that
calls it holds the rest, so `find_controller` looks for it in the calling frames (Ray 2.x calls
`setup` from `TuneController.setup_experiments`); without it the driver records what the spec says and
an early stop is told as "stopped by the scheduler". `record_stops` wraps the scheduler's
`on_trial_result` on that one instance to note each STOP decision: the result Tune then hands the
callbacks says only `done`, which a stop criterion or the trainable itself also set.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

MAX_FRAMES = 8  # setup is called a few frames under TuneController.setup_experiments


class Setup:
    """The TuneController setting the experiment up and the experiments it was given (their specs hold
    the search space), as found on the stack."""

    def __init__(self, controller: Any | None, experiments: list[Any], run_locals: dict[str, Any]) -> None:
        self.controller = controller
        self.experiments = experiments
        self.run_locals = run_locals  # `tune.run`'s arguments: metric and mode are kept nowhere else


def find_setup() -> Setup:
    """The TuneController whose `setup_experiments` is on the stack (None when it is not there)."""
    frame = sys._getframe(1)
    for _ in range(MAX_FRAMES):
        frame = frame.f_back  # type: ignore[assignment]
        if frame is None:
            break
        owner = frame.f_locals.get("self")
        if type(owner).__name__ == "TuneController" and hasattr(owner, "_scheduler_alg"):
            caller = frame.f_back
            run_locals = dict(caller.f_locals) if caller is not None and caller.f_code.co_name == "run" else {}
            return Setup(owner, list(frame.f_locals.get("experiments") or []), run_locals)
    return Setup(None, [], {})


def search_space(setup: Setup) -> dict[str, Any]:
    """The experiment's `param_space` as Tune was given it (domains, grid searches), else empty."""
    spec = getattr(setup.experiments[0], "spec", None) if setup.experiments else None
    config = spec.get("config") if isinstance(spec, dict) else None
    return dict(config) if isinstance(config, dict) else {}


def scheduler_of(controller: Any | None) -> Any | None:
    return None if controller is None else getattr(controller, "_scheduler_alg", None)


def searcher_name(controller: Any | None) -> str:
    """The search algorithm's class (the wrapped Searcher's for a SearchGenerator, e.g. OptunaSearch)."""
    search = None if controller is None else getattr(controller, "_search_alg", None)
    inner = getattr(search, "searcher", None)
    return type(inner if inner is not None else search).__name__ if search is not None else ""


def metric_and_mode(setup: Setup) -> tuple[str | None, str | None]:
    """The experiment's metric and mode, as TuneConfig gave them to `tune.run` (else to the scheduler)."""
    controller = setup.controller
    if controller is None:
        return None, None
    holders = (controller._scheduler_alg, getattr(controller, "_search_alg", None))
    metric = setup.run_locals.get("metric") or getattr(controller, "_metric", None)
    mode = setup.run_locals.get("mode")
    for holder in holders:
        metric = metric or getattr(holder, "_metric", None) or getattr(holder, "metric", None)
        mode = mode or getattr(holder, "_mode", None) or getattr(holder, "mode", None)
    if metric == "_metric":  # Tune's DEFAULT_METRIC placeholder: no metric given
        metric = None
    return (metric if isinstance(metric, str) else None), (mode if mode in ("min", "max") else None)


def experiment_path(controller: Any | None, fallback: str) -> str:
    """Where the experiment's state lives: the same for a `Tuner.restore` of it, so it names the experiment."""
    storage = None if controller is None else getattr(controller, "_storage", None)
    path = getattr(storage, "experiment_fs_path", None)
    return str(path) if path else fallback


class _RecordingDecisions:
    """The scheduler's own `on_trial_result`, noting each STOP. Pickled (with the scheduler, in Tune's
    experiment state), it is the original method again: the note-taking is this process's only."""

    def __init__(self, original: Callable[..., Any], stopped: Callable[[str, int], None]) -> None:
        self.original = original
        self.stopped = stopped

    def __call__(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> Any:
        decision = self.original(tune_controller, trial, result)
        if decision == "STOP":  # TrialScheduler.STOP
            try:
                self.stopped(trial.trial_id, int(result.get("training_iteration") or 0))
            except Exception:  # noqa: BLE001 - a note for the tracker never changes Tune's decision
                pass
        return decision

    def __reduce__(self) -> tuple[Any, ...]:
        return getattr, (self.original.__self__, self.original.__name__)


def record_stops(scheduler: Any | None, stopped: Callable[[str, int], None] | None) -> None:
    """Have `stopped(trial_id, iteration)` called for each trial the scheduler decides to stop; None
    gives the scheduler its own method back."""
    if scheduler is None:
        return
    if isinstance(scheduler.__dict__.get("on_trial_result"), _RecordingDecisions):
        del scheduler.on_trial_result  # a second experiment with the same scheduler object, or the end
    if stopped is not None:
        scheduler.on_trial_result = _RecordingDecisions(scheduler.on_trial_result, stopped)


def scheduler_name(scheduler: Any) -> str:
    """The name Ray exports the scheduler's class under (the shortest: `ASHAScheduler` for
    AsyncHyperBandScheduler), else its class name."""
    cls = type(scheduler)
    try:
        from ray.tune import schedulers

        names = [name for name in getattr(schedulers, "__all__", ()) if getattr(schedulers, name, None) is cls]
    except Exception:  # noqa: BLE001 - the class name is as true, only longer
        names = []
    return min(names, key=len) if names else cls.__name__


def scheduler_budget(scheduler: Any) -> int | None:
    """The iteration at which the scheduler stops every trial (ASHA's and HyperBand's `max_t`, when
    counted in training iterations)."""
    if getattr(scheduler, "_time_attr", "training_iteration") != "training_iteration":
        return None
    for attr in ("_max_t", "_max_t_attr"):
        value = getattr(scheduler, attr, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return int(value)
    return None
