"""diary_integrations.keras.DiaryCallback with real Keras 3 (torch backend): a 5-epoch fit (parameters,
epoch and batch series, the model registered), and a NaN loss stopped by TerminateOnNaN ending FAILED
with the batch it happened at."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from diary_integrations import IterationStatus, connect  # noqa: E402
from diary_integrations.keras import DiaryCallback  # noqa: E402
from diary_integrations.registry import load_model  # noqa: E402
from diary_integrations.tracker.errors import Unprocessable  # noqa: E402


def small_model(loss: str = "binary_crossentropy") -> keras.Model:
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid" if loss != "mse" else None)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss, metrics=["accuracy"] if loss != "mse" else [])
    return model


def test_five_epochs_parameters_series_and_model(sqlite_url, data, tmp_path):
    X, y = data[0].astype("float32"), data[1].astype("float32")
    cb = DiaryCallback("P", "keras", uri=sqlite_url, sidecar=False, log_every_n_batches=2, log_model=True,
                       register_as="churn-mlp")
    model = small_model()
    history = model.fit(X, y, epochs=5, batch_size=50, validation_split=0.2, verbose=0, callbacks=[cb])
    tracker = connect(sqlite_url)
    it = tracker.get_iteration(cb.iteration_id)
    assert it.status is IterationStatus.SUCCEEDED
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        stored = tracker.get_metrics(it.id, key=key)
        assert [m.step for m in stored] == list(range(5))
        assert [m.value for m in stored] == pytest.approx(history.history[key])
    # 240 training rows in batches of 50: 5 a epoch, 25 in all; every second one recorded.
    assert [m.step for m in tracker.get_metrics(it.id, key="batch/loss")] == list(range(2, 26, 2))
    params = {p.key: p.value for p in tracker.get_parameters(it.id)}
    assert params["fit/epochs"] == "5" and params["optimizer/name"] == "adam"
    assert float(params["optimizer/learning_rate"]) == pytest.approx(0.01)
    path = tmp_path / "back.keras"
    load_model("churn-mlp", tracker=tracker, path=path)
    assert np.allclose(keras.saving.load_model(path).predict(X[:4], verbose=0), model.predict(X[:4], verbose=0))


def test_nan_loss_stopped_by_terminate_on_nan_is_failed(sqlite_url, data):
    X = data[0].astype("float32")
    y = data[1].astype("float32")
    y[100:] = np.nan  # batch 2 (of 50 rows, unshuffled) is the first with a NaN loss
    cb = DiaryCallback("P", "keras", uri=sqlite_url, sidecar=False, log_every_n_batches=1)
    small_model("mse").fit(X, y, epochs=3, batch_size=50, shuffle=False, verbose=0,
                           callbacks=[cb, keras.callbacks.TerminateOnNaN()])
    tracker = connect(sqlite_url)
    it = tracker.get_iteration(cb.iteration_id)
    assert it.status is IterationStatus.FAILED and it.error_message == "loss became NaN at batch 2"
    assert [m.step for m in tracker.get_metrics(it.id, key="batch/loss")] == [1, 2]  # the finite ones


def test_bad_arguments_are_refused_when_the_callback_is_made(tmp_path):
    with pytest.raises(Unprocessable) as caught:
        DiaryCallback("P", "E", uri=f"sqlite:///{tmp_path / 'x.db'}", log_every_n_batches=-1)
    assert caught.value.field == "log_every_n_batches"


def test_a_caught_exception_ends_the_run_failed_with_its_text_at_once(sqlite_url, data):
    class RaiseAtEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):  # noqa: ANN001, ANN202
            if epoch == 3:
                raise ValueError("callback blew up at epoch 3")

    X, y = data
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    cb = DiaryCallback("P", "keras", uri=sqlite_url, sidecar=False, log_every_n_batches=0)
    with pytest.raises(ValueError):
        model.fit(X, y, epochs=10, batch_size=100, verbose=0, callbacks=[cb, RaiseAtEpoch()])
    assert cb.run.status is IterationStatus.FAILED  # at once, not at exit
    tracker = connect(sqlite_url)
    it = tracker.get_iteration(cb.iteration_id)
    assert (it.status, it.error_message) == (IterationStatus.FAILED, "ValueError: callback blew up at epoch 3")
    assert [m.step for m in tracker.get_metrics(it.id, key="loss")] == [0, 1, 2]
    # The model's train step is its own again: a second fit succeeds and is recorded.
    cb2 = DiaryCallback("P", "keras", uri=sqlite_url, sidecar=False, log_every_n_batches=0)
    model.fit(X, y, epochs=2, batch_size=100, verbose=0, callbacks=[cb2])
    assert tracker.get_iteration(cb2.iteration_id).status is IterationStatus.SUCCEEDED
