"""Keras integration: `DiaryCallback`, a `keras.callbacks.Callback` that records a `Model.fit`.

    cb = DiaryCallback("Churn", "keras", uri="sqlite:///runs.db", log_every_n_batches=50)
    model.fit(x, y, epochs=5, validation_split=0.2, callbacks=[cb])
    cb.iteration_id

`fit`'s settings and the optimizer's configuration as parameters; batch-level metrics every N batches
(`batch/loss`, step = batches seen) and epoch-level ones by epoch (`loss`, `val_loss`, step = epoch);
the model (`.keras`) as a resource on request, `register_as=` a model version. SUCCEEDED, FAILED with
the exception's text (a NaN loss that `TerminateOnNaN` stopped: "loss became NaN at batch N"), KILLED
on Ctrl-C or SIGTERM. Needs the `[keras]` extra (any backend).
"""

from __future__ import annotations

from .callback import DiaryCallback

__all__ = ["DiaryCallback"]
