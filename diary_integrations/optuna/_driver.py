"""The study's driver iteration: found by every process that works on the study, created exactly once,
and brought up to date (best value and parameters) and ended by whichever process finishes last.

How "exactly once" holds across processes and hosts (docs/decisions.md, "Optuna"):
- the driver's id is kept in the study's system attributes (`diary:driver:<experiment id>`), which every
  process sharing an RDB storage reads;
- when it is not there yet, the driver is created under an idempotency key derived from the experiment and
  the study (its name and storage id): two processes racing to create it get the same iteration back, on a
  LocalTracker as through a server, and both then write the same id into the study's attributes.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

from ..connection import connect, resolve_uri
from ..reporting import announce
from ..reporting import warn_tracking as _warn_tracking
from ..resolve import check_destination, experiment_for
from ..tracker.enums import IterationStatus
from ..tracker.errors import Conflict, Unprocessable
from ..tracker.keys import derived_key, using_key
from ..tracker.lifecycle import Heartbeat, describe_failure

log = logging.getLogger("diary_integrations.optuna")

DRIVER_ATTR = "diary:driver:{experiment}"  # study system attribute: the driver's iteration id
TRIAL_ATTR = "diary:iteration_id"  # trial system attribute: the trial's child iteration id


def warn_tracking(what: str, error: BaseException, *, quiet: bool = False) -> None:
    """Report a tracking error without raising: tracking never changes a study's results."""
    _warn_tracking(what, error, logger=log, stacklevel=4, quiet=quiet)


@dataclass(frozen=True)
class Options:
    project: str
    experiment: str
    uri: str | None = None

    def __post_init__(self) -> None:
        check_destination(self.project, self.experiment, self.uri)  # refused now, not at the first trial

    @property
    def target(self) -> str:
        return resolve_uri(None if self.uri is None else os.fspath(self.uri))


_trackers: dict[tuple[int, str, bool], Any] = {}
_trackers_lock = threading.Lock()


def tracker_for(options: Options, *, shared: bool = False) -> Any:
    """One tracker per process and URI, shared by the studies (and threads of `n_jobs`) of this process.

    `shared`: the tracker that writes drivers. On an embedded database it records no process beside what
    it creates or beats: several processes (maybe on several hosts) work on one study, so its driver must
    not be counted dead when the process that created it exits while the others go on. It lives by its
    lease instead, beaten by every process in an `optimize`, as iterations behind a server always do.
    Trials keep the usual tracker: a trial runs in one process, and is KILLED as soon as that one dies."""
    key = (os.getpid(), options.target, shared)
    with _trackers_lock:
        tracker = _trackers.get(key)
        if tracker is None:
            tracker = _trackers[key] = connect(options.target)
            if shared and hasattr(tracker, "record_processes"):
                tracker.record_processes = False
            if not shared:
                announce(tracker, "Optuna study")
        return tracker


def study_key(study: Any) -> str:
    """What names a study across processes: its name and its id in the storage they share."""
    return f"{study.study_name}\x1f{study._study_id}"


def keyed(prefix: str, *parts: object) -> str:
    """A deterministic idempotency key: the same write from any process is applied once."""
    return derived_key("optuna", prefix, *parts)


def describe_study(study: Any) -> dict[str, Any]:
    return {
        "study_name": study.study_name,
        "directions": ",".join(d.name.lower() for d in study.directions),
        "sampler": type(study.sampler).__name__,
        "pruner": type(study.pruner).__name__,
    }


class Driver:
    """This process's handle on a study's driver iteration."""

    def __init__(self, options: Options, study: Any, *, system_metrics: bool = True,
                 system_metrics_interval: float = 10.0) -> None:
        from ..system_metrics import check_options

        check_options(system_metrics, system_metrics_interval)
        self.system_metrics, self.system_metrics_interval = system_metrics, system_metrics_interval
        self.sampler: Any = None  # this process's system metrics while an optimize call runs
        self.options = options
        self.tracker = tracker_for(options, shared=True)
        self.experiment_id = experiment_for(self.tracker, options.project, options.experiment)
        self.study = study
        self.iteration_id = self._find_or_create()
        self.space: set[str] = set()  # search-space entries this process has written
        self.lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"study {self.study.study_name}"[:200]

    def _find_or_create(self) -> int:
        attr = DRIVER_ATTR.format(experiment=self.experiment_id)
        known = self.study._storage.get_study_system_attrs(self.study._study_id).get(attr)
        if isinstance(known, int):
            found = self.tracker.get_iteration(known)
            if (
                found is not None
                and found.experiment_id == self.experiment_id
                and found.parent_iteration_id is None
                and found.name == self.name
            ):  # the id may be of another tracker, where it names anything
                return known
        with using_key(keyed("driver", self.experiment_id, study_key(self.study))):
            created = self.tracker.create_iteration(
                self.experiment_id,
                notes=f"Optuna study {self.study.study_name}",
                name=self.name,
                parameters=describe_study(self.study),
            )
        # Every racer writes the same id (the key gave them one iteration): the last write changes nothing.
        self.study._storage.set_study_system_attr(self.study._study_id, attr, created.id)
        return created.id

    # -- an optimize call's life ------------------------------------------------------------------

    def open(self) -> None:
        """An optimize call starts: the driver is RUNNING (reopened if an earlier call ended it) and this
        process beats it for as long as the call lasts."""
        found = self.tracker.get_iteration(self.iteration_id)
        if found is not None and found.status is not IterationStatus.RUNNING:
            self._reopen(found.status, "the study is optimized again")
        Heartbeat.of(self.tracker).add(self.iteration_id)
        if self.system_metrics and self.sampler is None:
            from .. import system_metrics

            # Each process optimizing the study samples its own tree onto the driver (decisions.md).
            self.sampler = system_metrics.start(self.tracker, self.iteration_id, interval=self.system_metrics_interval)

    def _reopen(self, seen: IterationStatus, reason: str) -> None:
        """RUNNING again, with a notes line saying when and why; compare-and-set on the status seen, so
        of processes reopening at once one does it and the others find it RUNNING."""
        try:
            self.tracker.reopen_iteration(self.iteration_id, expected_status=seen, reason=reason)
        except Conflict:
            pass  # another process reopened (or ended) it first: it is that process's to end

    def learn_space(self, name: str, distribution: Any) -> None:
        """A parameter drawn for the first time (in this process): its distribution joins the driver's
        search space. The first writer wins; a later, different distribution (a dynamic space) is kept out."""
        with self.lock:
            if name in self.space:
                return
            self.space.add(name)
        from optuna.distributions import distribution_to_json

        try:
            self.tracker.log_parameters(self.iteration_id, {f"space.{name}": distribution_to_json(distribution)})
        except Conflict:
            pass

    def close(self, error: BaseException | None) -> None:
        """An optimize call ends. While a trial of another process is RUNNING under the driver, that
        process will finish it; otherwise this one writes the study's summary (best value and parameters)
        and ends it. Only a finisher writes the summary: it saw every trial's child ended, and a child ends
        after Optuna stored its trial's state, so what it reads from the storage is complete, and two
        processes finishing at once write the same summary."""
        from ..system_metrics import stop_quietly

        sampler, self.sampler = self.sampler, None
        stop_quietly(sampler)  # its points are written before the driver can end
        Heartbeat.of(self.tracker).discard(self.iteration_id)
        if any(c.status is IterationStatus.RUNNING for c in self.tracker.get_child_iterations(self.iteration_id)):
            return
        metrics, params = self.summary()
        found = self.tracker.get_iteration(self.iteration_id)
        if found is not None and found.status is not IterationStatus.RUNNING:
            written = self.tracker.get_latest_metrics([self.iteration_id]).get(self.iteration_id, {})
            if written.get("n_finished_trials") == metrics["n_finished_trials"]:
                return  # ended by a process that finished at the same moment, with this very summary
            # Trials ran after another process ended it (they started as it finished): bring it up to date.
            self._reopen(found.status, "trials ended after another process ended the study")
        try:
            self.tracker.log_metrics(self.iteration_id, metrics, step=int(metrics["n_finished_trials"]))
        except Conflict:
            pass  # another finisher wrote this step: the same counts
        self._set_parameters(params)
        status, message, trace = (IterationStatus.SUCCEEDED, "", "") if error is None else describe_failure(error)
        try:
            self.tracker.end_iteration(self.iteration_id, status, error_message=message, traceback=trace)
        except (Conflict, Unprocessable):
            pass  # ended by another process finishing at the same moment: its end stands

    def summary(self) -> tuple[dict[str, float], dict[str, Any]]:
        """The driver's metrics (best value, trial counts; one point per count of finished trials, so a
        continued study adds points) and parameters (`best.<name>`, updated when a later trial beats them)."""
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        ended = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        finished = len(self.study.get_trials(deepcopy=False, states=ended))
        metrics: dict[str, float] = {"n_complete_trials": float(len(trials)), "n_finished_trials": float(finished)}
        params: dict[str, Any] = {}
        if trials and len(self.study.directions) == 1:
            best = self.study.best_trial
            metrics["best_value"] = float(best.value)
            params = {"best_trial": best.number, **{f"best.{k}": v for k, v in best.params.items()}}
        elif trials:
            params = {"best_trials": ",".join(str(t.number) for t in self.study.best_trials)}
        return metrics, params

    def _set_parameters(self, params: dict[str, Any]) -> None:
        existing = {p.key: p for p in self.tracker.get_parameters(self.iteration_id)}
        new = {k: v for k, v in params.items() if k not in existing}
        for key, value in params.items():
            if key in existing and existing[key].value != str(value):
                self.tracker.update_parameter(existing[key].id, value=value)
        if new:
            try:
                self.tracker.log_parameters(self.iteration_id, new)
            except Conflict:  # another process wrote them meanwhile
                pass
