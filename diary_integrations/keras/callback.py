"""DiaryCallback over CallbackRun for Keras 3's `Model.fit`."""

from __future__ import annotations

import math
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras

from ..boosting import TrackedCallback
from ..callback_run import CallbackRun
from ..tracker.enums import IterationStatus
from ..tracker.errors import Unprocessable
from ..training_failure import Interposed

# What `fit` calls every epoch or batch: an exception leaving the fit passes through one of them.
_HOOKS = ("on_epoch_begin", "on_epoch_end", "on_train_batch_begin", "on_train_batch_end")


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class DiaryCallback(TrackedCallback, keras.callbacks.Callback):
    """Records each `fit` it is passed to as one run. Arguments as `CallbackRun`'s; `params` adds your
    own parameters; `log_every_n_batches` (0: none) sets how often batch-level metrics are recorded."""

    def __init__(self, *args: Any, log_every_n_batches: int = 50, **kwargs: Any) -> None:
        if not (isinstance(log_every_n_batches, int) and not isinstance(log_every_n_batches, bool)
                and log_every_n_batches >= 0):
            raise Unprocessable(f"log_every_n_batches must be a non-negative integer, got {log_every_n_batches!r}",
                                field="log_every_n_batches")
        super().__init__(*args, **kwargs)
        self._every = log_every_n_batches
        self._batches = 0  # batches seen in this fit, over all epochs: the batch series' step
        self._nan_batch: int | None = None
        self._interposed: Interposed | None = None

    PER_TRAINING: dict[str, Any] = {"run": None, "_interposed": None}

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        run = self._new_run()
        self._batches, self._nan_batch = 0, None
        # Called by the CallbackList's on_train_begin, called by `fit`: the list is the caller's `self`, and
        # the batches come from `fit`'s own local EpochIterator (Keras keeps it nowhere else).
        caller = sys._getframe(1)
        fit = caller.f_back
        self._interpose(run, caller.f_locals.get("self"), None if fit is None else fit.f_locals.get("epoch_iterator"))
        try:
            run.log_params(self._parameters())
        except Exception as error:  # noqa: BLE001 - tracking never breaks training
            self._guard.warn("recording the parameters", error)

    def _interpose(self, run: CallbackRun, callbacks: Any, batches: Any) -> None:
        """Watch the train step, the callback list's per-epoch and per-batch hooks (the other callbacks
        run there) and the iteration over the training data (a generator or a PyDataset that raises), so
        an exception leaving `fit` ends the run FAILED with its text (KILLED for an interrupt) even when
        the program catches it."""
        interposed = self._interposed = Interposed()

        def failed(exc: BaseException) -> None:
            interposed.restore()
            run.end(exc)

        try:
            if isinstance(callbacks, keras.callbacks.CallbackList):
                for name in _HOOKS:
                    interposed.wrap(callbacks, name, failed)
            if getattr(self.model, "train_function", None) is not None:
                interposed.wrap(self.model, "train_function", failed)
            if callable(getattr(batches, "_get_iterator", None)):
                # Each epoch's (or, with steps_per_epoch, the fit's) iterator over the data adapter's batches.
                interposed.wrap_iterable(batches, "_get_iterator", failed)
        except Exception as error:  # noqa: BLE001 - without it, an exception ends the run at exit instead
            interposed.restore()
            self._guard.warn("watching the fit for an exception", error)

    def _parameters(self) -> dict[str, Any]:
        fit = {k: v for k, v in (self.params or {}).items() if isinstance(v, (bool, int, float, str))}
        out: dict[str, Any] = {"fit": fit, "model": {"name": self.model.name,
                                                      "parameters": int(self.model.count_params())}}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            config = optimizer.get_config()
            out["optimizer"] = {k: v for k, v in config.items() if isinstance(v, (bool, int, float, str))}
        return out

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._batches += 1
        logs = logs or {}
        loss = _number(logs.get("loss"))
        if loss is not None and (math.isnan(loss) or math.isinf(loss)) and self._nan_batch is None:
            self._nan_batch = batch  # what TerminateOnNaN stops on
        if self.run is None or not self._every or self._batches % self._every:
            return
        try:
            values = {f"batch/{k}": v for k, v in ((k, _number(v)) for k, v in logs.items())
                      if v is not None and math.isfinite(v)}
            self.run.log_metrics(values, step=self._batches)
        except Exception as error:  # noqa: BLE001
            self._guard.warn(f"recording batch {self._batches}", error)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self.run is None:
            return
        try:
            values = {k: v for k, v in ((k, _number(v)) for k, v in (logs or {}).items())
                      if v is not None and math.isfinite(v)}
            self.run.log_metrics(values, step=epoch)
        except Exception as error:  # noqa: BLE001
            self._guard.warn(f"recording epoch {epoch}", error)

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        if self._interposed is not None:
            self._interposed.restore()  # the model and the callback list carry no wrapper after fit
        run = self.run
        if run is None:
            return
        try:
            if self._nan_batch is not None and self.model.stop_training:
                # TerminateOnNaN (or a callback like it) stopped the fit: it did not succeed.
                run.end_with(IterationStatus.FAILED, f"loss became NaN at batch {self._nan_batch}")
                return
            if run.log_model:
                self._store_model(run)
        except Exception as error:  # noqa: BLE001
            self._guard.warn("recording the end of training", error)
        run.end()

    def _store_model(self, run: CallbackRun) -> None:
        with tempfile.TemporaryDirectory(prefix="diary-keras-") as folder:
            path = Path(folder) / "model.keras"
            self.model.save(path)
            run.store_model(path.read_bytes(), file_name="model.keras", description="Keras model (.keras)")
