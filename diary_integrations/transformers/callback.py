"""`DiaryCallback`: a `transformers.TrainerCallback` that records one iteration per `train()`.

The run itself (opening, parameters written once, metric points through the background writer, the
truthful end, exit hooks, resources and `register_as`) is the shared callback run (callback_run.py);
this module only says what a Trainer's events mean for it."""

from __future__ import annotations

import logging
import os
from typing import Any, Literal

from transformers import TrainerCallback

from .. import distributed
from ..callback_run import CallbackRun
from ..optuna._driver import Options
from ..optuna._trials import pruned_note
from ..reporting import warn_tracking
from ..resolve import check_destination
from ..tracker.enums import IterationStatus
from ..tracker.errors import Unprocessable
from . import checkpoints, ranks, ray_search, trainer_hooks
from .params import metric_values, run_parameters
from .search import OptunaSearch, is_optuna_trial

log = logging.getLogger("diary_integrations.transformers")


class DiaryCallback(TrainerCallback):
    """Track every `train()` of the Trainer it is given to as one iteration of `project`/`experiment`
    (names, found or created) in the tracker at `uri` (default: `DIARY_TRACKING_URI`, else ./diary.db):

        trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=test,
                          callbacks=[DiaryCallback("Fraud detection", "BERT", uri="runs.db")])
        trainer.train()

    Parameters: the TrainingArguments that differ from their defaults (`args/...`) and the model's
    config (`config/...`). Metrics: every `on_log` by global step, as `train/...`, `eval/...`,
    `test/...`. The end: SUCCEEDED when `train()` returns, FAILED with the exception's text and
    traceback when it raises, KILLED on Ctrl-C or SIGTERM. `log_model=True` stores the final model (the
    best checkpoint when the Trainer tracks one, else the last saved one, else the model as trained) as a
    zip of its config and weights; `register_as=` registers it as the next version of that model after a
    success.

    `Trainer.hyperparameter_search(backend="optuna")` gives a driver iteration for the search, a child
    per trial (its parameters, its objective, its truthful end) and each trial's `train()` as a run
    under that child. Only the main process of a multi-process run writes; `per_rank=True` gives a
    driver iteration and a child per rank, each written by its rank (ranks.py).

    Pass it in `Trainer(callbacks=[...])`: the Trainer then hands it its `train()` calls' ends (see
    trainer_hooks.py). Added later with `add_callback`, it is attached at the first `train()`, whose
    failure it then learns only from the process's exit (the exit hooks).
    """

    def __init__(
        self,
        project: str,
        experiment: str,
        uri: str | os.PathLike[str] | None = None,
        *,
        parent_iteration_id: int | None = None,
        name: str = "",
        notes: str = "",
        per_rank: bool = False,
        log_model: bool = False,
        register_as: str | None = None,
        sidecar: bool = True,
        tracker: Any = None,
        system_metrics: bool = True,
        system_metrics_interval: float = 10.0,
    ) -> None:
        self._uri = check_destination(project, experiment, uri) if tracker is None else uri
        _check_options(parent_iteration_id, name, notes, log_model, register_as, sidecar, per_rank)
        from .. import system_metrics as sampling

        sampling.check_options(system_metrics, system_metrics_interval)
        self._system_metrics = {"system_metrics": system_metrics, "system_metrics_interval": system_metrics_interval}
        self._per_rank = per_rank
        self._project, self._experiment = project, experiment
        self._parent_iteration_id = parent_iteration_id
        self._name, self._notes = name, notes
        self._log_model, self._register_as = log_model, register_as
        self._sidecar, self._tracker = sidecar, tracker
        self._run: CallbackRun | ranks.RankRuns | None = None  # the current train()'s run
        self._ended: list[CallbackRun | ranks.RankRuns] = []  # the runs of earlier train() calls
        self._observed = False  # the current train() goes through the wrapper, which ends its run
        self._trial_parent: int | None = None  # the current trial's child (hyperparameter search)
        self._trial_tracker: Any = None  # the search's tracker, which the trial's run shares
        self._searches: dict[int, OptunaSearch] = {}  # id(study) -> its search
        self._last_end: tuple[Any, Any, Any] | None = None  # (args, state, model) at on_train_end
        self._shared_run_id: int | None = None  # rank > 0 of a run rank 0 writes: that run's id
        self._tune_recorder: Any = None  # the Ray Tune callback recording a search with backend="ray"
        self._open_now = False  # the current train() is a Ray Tune trial's: its run is opened at once
        self._warned = False

    def __getstate__(self) -> dict[str, Any]:
        """A copy in another process (Ray pickles the Trainer with its callbacks) starts with no run:
        runs, searches and trackers belong to the process that opened them."""
        state = self.__dict__.copy()
        state.update(_run=None, _ended=[], _searches={}, _trial_tracker=None, _trial_parent=None,
                     _last_end=None, _observed=False, _shared_run_id=None, _tune_recorder=None)
        return state

    # -- what users read ------------------------------------------------------------------------

    @property
    def iteration_id(self) -> int | None:
        """The iteration of the current (else the last) `train()` in this process, or None."""
        run = self._run or (self._ended[-1] if self._ended else None)
        return None if run is None else run.iteration_id

    @property
    def iteration_ids(self) -> list[int]:
        """Every iteration this callback opened in this process, oldest first."""
        runs = [*self._ended, *([self._run] if self._run is not None else [])]
        return [run.iteration_id for run in runs if run.iteration_id is not None]

    @property
    def driver_iteration_id(self) -> int | None:
        """The driver of the last `hyperparameter_search` (optuna or ray), or None."""
        return self._last_driver

    _last_driver: int | None = None

    # -- the Trainer's events -------------------------------------------------------------------

    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """The Trainer was built: its `train` and `hyperparameter_search` now tell this callback how they end."""
        trainer = trainer_hooks.calling_trainer()
        if trainer is not None:
            trainer_hooks.attach(trainer, self)

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        """Open this `train()`'s iteration (main process only) and write its parameters."""
        if not self._observed:  # added with add_callback: attached for the next train() calls
            trainer = trainer_hooks.calling_trainer()
            if trainer is not None:
                trainer_hooks.attach(trainer, self)
        self._shared_run_id = None
        shared = not self._per_rank and ranks.applies()  # one run for all ranks, rank 0 writes it
        if not (state.is_world_process_zero or (self._per_rank and ranks.applies())):
            if shared:  # learns the run's id (rank 0's broadcast), to end it with its own error
                self._shared_run_id = self._guard("could not learn the run's id", lambda: ranks.share_run(None))
            return
        if self._run is not None:  # an earlier train() raised without passing through the wrapper
            self._finish(RuntimeError("train() did not finish: it raised before this train() began"), None)
        self._guard("could not open the run", lambda: self._open(args, model, shared=shared))

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        """Every log (training, evaluation, the final summary) as metric points at the global step."""
        run = self._run
        if run is None:
            return
        values = metric_values(logs)
        if values:
            self._guard("could not record metrics", lambda: run.log_metrics(values, step=state.global_step))

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        """The training loop is over. The wrapper ends the run when `train()` returns (a pruned trial
        passes here before it raises); without it, this is the end."""
        self._last_end = (args, state, model)
        if not self._observed:
            self._finish(None, None)

    # -- the Trainer's entry points (trainer_hooks) ---------------------------------------------

    def entering_train(self, trial: Any) -> None:
        """A `train()` call begins; a trial of an optuna search gets its child before the run opens."""
        self._observed = True
        self._trial_parent = self._trial_tracker = None
        # A Ray Tune trial (its config dict): Tune may end the trial's process right after a report,
        # without waiting for train(), so the run is opened before training starts, not beside it.
        self._open_now = isinstance(trial, dict)
        if is_optuna_trial(trial) and distributed.current_rank() == 0:
            search = self._search_for(trial.study)
            if search is not None:
                self._trial_parent = search.start_trial(trial)
                # The Optuna integration's tracker is connected already: a trial's run starts no sidecar.
                self._trial_tracker = search.recorder.tracker

    def left_train(self, trial: Any, exc: BaseException | None) -> None:
        """A `train()` call returned (`exc` None) or raised: its run ends, then its trial's child. On a
        rank > 0 of a run rank 0 writes, an exception ends that run with this rank's own error."""
        self._observed = False
        self._finish(exc, trial)
        shared, self._shared_run_id = self._shared_run_id, None
        if shared is not None and exc is not None:
            self._guard("could not record this rank's failure", lambda: ranks.conclude_peer(
                self._connect, shared, exc, own_tracker=self._tracker is None))
        search = self._searches.get(id(trial.study)) if is_optuna_trial(trial) else None
        if search is not None:
            if exc is None:
                search.train_returned(trial)
            else:
                search.train_raised(trial, exc)
        self._trial_parent = self._trial_tracker = None

    def entering_search(self, arguments: dict[str, Any], extra: dict[str, Any]) -> None:
        """A `hyperparameter_search` begins: for optuna its studies are learned from their trials; for
        ray the Ray Tune integration's callback joins the `tune.run` call (`extra`, its keyword arguments)."""
        self._tune_recorder = None
        if ray_search.backend_name(arguments.get("backend")) != "ray" or distributed.current_rank() != 0:
            return
        self._tune_recorder = self._guard("could not set up the Ray Tune search's tracking", lambda: (
            ray_search.join_tune_run(extra, self._project, self._experiment, self._uri, sidecar=self._sidecar,
                                     direction=arguments.get("direction", "minimize"))))

    def left_search(self, exc: BaseException | None) -> None:
        """The search returned or raised: its trials' children and its driver end (optuna; the Ray Tune
        callback ended them itself)."""
        searches, self._searches = list(self._searches.values()), {}
        for search in searches:
            search.close(exc)
        recorder, self._tune_recorder = self._tune_recorder, None
        if recorder is not None and recorder.driver_iteration_id is not None:
            self._last_driver = recorder.driver_iteration_id

    # -- the run ----------------------------------------------------------------------------------

    def _open(self, args: Any, model: Any, *, shared: bool = False) -> None:
        name = self._name or (args.run_name or "")
        if shared:  # the other ranks wait in the broadcast: opened now, whatever happens
            run = self._run = self._new_run(
                name=name, tracker=self._tracker if self._tracker is not None else self._trial_tracker)
            run.end_raised = ranks.shared_end(distributed.world_size())
            ranks.share_run(run.open)
        elif self._per_rank and ranks.applies():
            runs = self._run = ranks.RankRuns(
                lambda **given: self._new_run(**{"name": name, **given}), self._connect,
                own_tracker=self._tracker is None,
            )
            runs.open()
        else:
            run = self._new_run(name=name, tracker=self._tracker if self._tracker is not None else self._trial_tracker)
            self._run = run
            if self._open_now:
                run.open()
            else:
                run.start()  # opened off the training thread; what is logged meanwhile waits for it
        self._run.log_params(run_parameters(args, model))

    def _new_run(self, **given: Any) -> CallbackRun:
        options: dict[str, Any] = {
            "tracker": self._tracker,
            "parent_iteration_id": self._parent_iteration_id if self._parent_iteration_id is not None
            else self._trial_parent,
            **given,
        }
        return CallbackRun(
            self._project, self._experiment, self._uri, notes=self._notes, sidecar=self._sidecar,
            log_model=self._log_model, register_as=self._register_as, **self._system_metrics, **options,
        )

    def _connect(self) -> Any:
        if self._tracker is not None:
            return self._tracker
        from ..connection import connect

        return connect(self._uri, sidecar=self._sidecar)

    def _finish(self, exc: BaseException | None, trial: Any) -> None:
        """End the current run: the final model first after a success (`log_model`), then the status."""
        run, self._run = self._run, None
        last, self._last_end = self._last_end, None
        if run is None:
            return
        self._ended.append(run)
        if exc is None and self._log_model and last is not None:
            self._guard("could not store the model", lambda: self._store_final(run, *last))
        step = _pruned_step(exc, trial)
        if step is not False:
            self._guard("could not end the run", lambda: run.end_with(IterationStatus.KILLED, pruned_note(step)))
        elif ray_search.stopped_by_tune(exc, trial):
            self._guard("could not end the run", lambda: run.end_with(IterationStatus.KILLED, ray_search.STOPPED))
        else:
            self._guard("could not end the run", lambda: run.end(exc))

    @staticmethod
    def _store_final(run: CallbackRun | ranks.RankRuns, args: Any, state: Any, model: Any) -> None:
        found = checkpoints.final_model(args, state, model)
        if found is not None:
            data, file_name = found
            run.store_model(data, file_name=file_name)

    def _search_for(self, study: Any) -> OptunaSearch | None:
        search = self._searches.get(id(study))
        if search is None:
            options = Options(self._project, self._experiment, self._uri)
            search = self._guard("could not open the search's driver", lambda: OptunaSearch(options, study))
            if search is None:
                return None
            self._searches[id(study)] = search
            self._last_driver = search.driver_iteration_id
        return search

    def _guard(self, what: str, call: Any) -> Any:
        """Tracking never breaks training: a failure is one TrackingWarning, the rest in the DEBUG log."""
        try:
            return call()
        except Exception as error:  # noqa: BLE001
            quiet, self._warned = self._warned, True
            warn_tracking(f"Transformers run: {what}", error, logger=log, stacklevel=4, quiet=quiet)
            return None


def _pruned_step(exc: BaseException | None, trial: Any) -> int | None | Literal[False]:
    """The last step an optuna trial reported when `exc` is its TrialPruned; False for anything else."""
    if exc is None or type(exc).__name__ != "TrialPruned" or not is_optuna_trial(trial):
        return False
    return trial.study._storage.get_trial(trial._trial_id).last_step


def _check_options(
    parent_iteration_id: Any, name: Any, notes: Any, log_model: Any, register_as: Any, sidecar: Any, per_rank: Any
) -> None:
    """DiaryCallback's arguments, refused when it is made (naming the field and the rule), not in train()."""
    if parent_iteration_id is not None and not (
        isinstance(parent_iteration_id, int) and not isinstance(parent_iteration_id, bool) and parent_iteration_id > 0
    ):
        raise Unprocessable(
            f"parent_iteration_id must be a positive integer id, got {parent_iteration_id!r}",
            field="parent_iteration_id",
        )
    for field, value in (("name", name), ("notes", notes)):
        if not isinstance(value, str):
            raise Unprocessable(f"{field} must be a string, got {type(value).__name__}", field=field)
    if not isinstance(log_model, bool):
        raise Unprocessable(f"log_model must be true or false, got {log_model!r}", field="log_model")
    if register_as is not None and not (log_model and isinstance(register_as, str) and register_as.strip()):
        raise Unprocessable("register_as needs log_model and a non-empty model name", field="register_as")
    for field, value in (("sidecar", sidecar), ("per_rank", per_rank)):
        if not isinstance(value, bool):
            raise Unprocessable(f"{field} must be true or false, got {value!r}", field=field)
