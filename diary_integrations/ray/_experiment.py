"""The Tune experiment's driver iteration: found again by a `Tuner.restore` of the same experiment, created
exactly once otherwise, and ended with the best trial's metric and config.

"Exactly once" (docs/decisions.md, "Issue 30"): the driver carries the run key `ray:<experiment path>`
(the directory Tune keeps the experiment's state in, which a restore names again, as a requeued
Lightning run's key does); a restored experiment (Tune says so) continues the newest driver with that
key, a new `Tuner.fit` makes its own. Children are found again by their `trial_id` parameter, and a
child's creation carries an idempotency key made of the driver and the trial, so a retry is applied once.
"""

from __future__ import annotations

import math
from typing import Any

from ..lightning import resume
from ..resolve import experiment_for
from ..tracker.enums import IterationStatus
from ..tracker.errors import Conflict, TransportError, Unprocessable
from ..tracker.keys import derived_key
from ..tracker.lifecycle import Heartbeat

TRIAL_ID_PARAMETER = "trial_id"


def keyed(prefix: str, *parts: object) -> str:
    """The idempotency key of one Ray Tune write."""
    return derived_key("ray", prefix, *parts)


class Driver:
    """The driver iteration of one Tune experiment, on the process that runs `Tuner.fit`."""

    def __init__(self, tracker: Any, project: str, experiment: str, path: str, parameters: dict[str, Any],
                 *, restored: bool) -> None:
        self.tracker = tracker
        self.experiment_id = experiment_for(tracker, project, experiment)
        self.run_key = f"ray:{path}"
        self.iteration_id, self.resumed = self._find_or_create(parameters, restored)
        self.journaled: Any = None  # the journal file its end waits in, when the server was away for it
        Heartbeat.of(tracker).add(self.iteration_id)

    def _find_or_create(self, parameters: dict[str, Any], restored: bool) -> tuple[int, bool]:
        """A restored experiment continues its driver (the newest with its run key, whatever its status: a
        finished experiment is restored to rerun its errored trials); a new `Tuner.fit`, even into the same
        directory, gets a driver of its own."""
        found = self._newest_with_key() if restored else None
        if found is None:
            created = self.tracker.create_iteration(
                self.experiment_id,
                name=f"Tune experiment {self.run_key.rsplit('/', 1)[-1]}"[:200],
                notes="Ray Tune experiment",
                parameters={resume.RUN_KEY_PARAMETER: self.run_key, **parameters},
            )
            return created.id, False
        resume.reopen(self.tracker, found, "Tuner.restore continues the experiment")
        return found.id, True

    def _newest_with_key(self) -> Any | None:
        drivers = [it for it in self.tracker.get_iterations(self.experiment_id) if it.parent_iteration_id is None]
        keys = self.tracker.get_parameter_values([it.id for it in drivers]) if drivers else {}
        mine = [it for it in drivers if keys.get(it.id, {}).get(resume.RUN_KEY_PARAMETER) == self.run_key]
        return max(mine, key=lambda it: it.id) if mine else None

    def children(self) -> dict[str, Any]:
        """The trials this driver already has a child for (a restored experiment), by Tune trial id."""
        found = self.tracker.get_child_iterations(self.iteration_id)
        if not found:
            return {}
        ids = self.tracker.get_parameter_values([c.id for c in found])
        return {ids[c.id][TRIAL_ID_PARAMETER]: c for c in found if TRIAL_ID_PARAMETER in ids.get(c.id, {})}

    def end(self, trials: list[Any], metric: str | None, mode: str | None, error: BaseException | None) -> None:
        """The summary (trial counts by Tune status, the best trial's metric, its config as `best.<key>`) and the end:
        SUCCEEDED, or FAILED (KILLED for an interruption) with the experiment's exception."""
        from ._trials import describe_error

        counts: dict[str, float] = {}
        for trial in trials:
            counts[f"n_{trial.status.lower()}_trials"] = counts.get(f"n_{trial.status.lower()}_trials", 0.0) + 1
        counts["n_trials"] = float(len(trials))
        best = best_trial(trials, metric, mode)
        parameters: dict[str, Any] = {}
        if best is not None and metric is not None:
            counts[f"best_{metric}"] = float(best.metric_analysis[metric]["last"])
            parameters = {"best_trial_id": best.trial_id, **{f"best.{k}": v for k, v in flat(best.config).items()}}
        # One point per end of the driver: a restored experiment's end adds a step, never rewrites one.
        # A new driver's end reads nothing (step 1, its best parameters in the end's own transaction): a
        # server away at the experiment's end then keeps the whole end in the journal.
        end_parameters: dict[str, Any] | None = parameters or None
        step = 1
        if self.resumed:
            step += max(resume.stored_last_steps(self.tracker, self.iteration_id).values(), default=0)
            self._set_parameters(parameters)
            end_parameters = None
        points = [(key, value, step) for key, value in counts.items()]
        status, message, trace = (IterationStatus.SUCCEEDED, "", "") if error is None else describe_error(error)
        Heartbeat.of(self.tracker).discard(self.iteration_id)
        try:
            self.tracker.end_iteration(self.iteration_id, status, error_message=message, traceback=trace, points=points,
                                       parameters=end_parameters)
        except (Conflict, Unprocessable):
            pass  # ended already (a reaper's KILLED while this process was stalled): that end stands
        except TransportError as exc:
            self.journaled = getattr(exc, "journal", None)  # kept in the local journal: sent from there
            if self.journaled is None:
                raise

    def _set_parameters(self, params: dict[str, Any]) -> None:
        """Best-trial parameters written, or updated when a restored experiment found a better trial."""
        existing = {p.key: p for p in self.tracker.get_parameters(self.iteration_id)}
        for key, value in params.items():
            if key in existing and existing[key].value != str(value):
                self.tracker.update_parameter(existing[key].id, value=value)
        new = {k: v for k, v in params.items() if k not in existing}
        if new:
            self.tracker.log_parameters(self.iteration_id, new)


def flat(config: dict[str, Any]) -> dict[str, Any]:
    """A trial config as parameters: nested keys joined with "/" as Tune flattens results."""
    from ray.tune.utils import flatten_dict

    return {str(k): v for k, v in flatten_dict(dict(config), delimiter="/").items()}


def best_trial(trials: list[Any], metric: str | None, mode: str | None) -> Any | None:
    """The trial `ResultGrid.get_best_result()` returns (its defaults: each trial's last value of the
    metric, NaN and infinities left out, the first of equals kept), or None without a metric."""
    if metric is None or mode not in ("min", "max"):
        return None
    if len(trials) == 1:
        return trials[0]
    best, best_score = None, None
    for trial in trials:
        analysis = trial.metric_analysis.get(metric)
        if not analysis:
            continue
        score = analysis.get("last")
        if not isinstance(score, (int, float)) or not math.isfinite(score):
            continue
        if best_score is None or (score > best_score if mode == "max" else score < best_score):
            best, best_score = trial, score
    return best
