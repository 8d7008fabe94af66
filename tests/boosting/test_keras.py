"""diary_integrations.keras.DiaryCallback with real Keras 3 (torch backend): a 5-epoch fit (parameters,
epoch and batch series, the model registered), and a NaN loss stopped by TerminateOnNaN ending FAILED
with the batch it happened at."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from boosting.ended import failed_at_once  # noqa: E402
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
    # Keras names optimizers uniquely in a process (adam, adam_1, ...): the name it gave this one.
    assert params["fit/epochs"] == "5" and params["optimizer/name"] == model.optimizer.name
    assert params["optimizer/name"].startswith("adam")
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
    tracker, it = failed_at_once(cb, sqlite_url, "ValueError: callback blew up at epoch 3")
    assert [m.step for m in tracker.get_metrics(it.id, key="loss")] == [0, 1, 2]
    # The model's train step is its own again: a second fit succeeds and is recorded.
    cb2 = DiaryCallback("P", "keras", uri=sqlite_url, sidecar=False, log_every_n_batches=0)
    model.fit(X, y, epochs=2, batch_size=100, verbose=0, callbacks=[cb2])
    assert tracker.get_iteration(cb2.iteration_id).status is IterationStatus.SUCCEEDED


class EpochNow(keras.callbacks.Callback):
    """Tells the test's data which epoch `fit` is in."""

    def __init__(self, state: dict) -> None:
        super().__init__()
        self.state = state

    def on_epoch_begin(self, epoch, logs=None):  # noqa: ANN001, ANN201
        self.state["epoch"] = epoch


def breaking_data(kind: str, X: np.ndarray, y: np.ndarray, state: dict) -> tuple[object, dict]:
    """Six batches of 50 rows an epoch, from a generator or a PyDataset, the fourth of epoch 2 raising."""
    def batch(i: int) -> tuple[np.ndarray, np.ndarray]:
        if state["epoch"] == 2 and i == 3:
            raise RuntimeError("the data pipeline broke at batch 3 of epoch 2")
        return X[i * 50:(i + 1) * 50], y[i * 50:(i + 1) * 50]

    if kind == "generator":
        def forever():  # noqa: ANN202
            while True:
                for i in range(6):
                    yield batch(i)

        return forever(), {"steps_per_epoch": 6}

    class Rows(keras.utils.PyDataset):
        def __len__(self) -> int:
            return 6

        def __getitem__(self, i: int):  # noqa: ANN204
            return batch(i)

    return Rows(), {"shuffle": False}  # in order: batch 3 is the fourth of the epoch


@pytest.mark.parametrize("kind", ["generator", "PyDataset"])
def test_data_that_raises_in_epoch_2_ends_the_run_failed_with_its_text(sqlite_url, data, kind):
    X, y = data[0].astype("float32"), data[1].astype("float32")
    state = {"epoch": 0}
    batches, options = breaking_data(kind, X, y, state)
    cb = DiaryCallback("P", "keras", uri=sqlite_url, sidecar=False, log_every_n_batches=1)
    with pytest.raises(RuntimeError, match="the data pipeline broke"):
        small_model().fit(batches, epochs=5, verbose=0, callbacks=[EpochNow(state), cb], **options)
    tracker, it = failed_at_once(cb, sqlite_url, "RuntimeError: the data pipeline broke at batch 3 of epoch 2")
    assert "in batch" in it.traceback
    for key in ("loss", "accuracy"):  # the two whole epochs before it, once each
        assert [m.step for m in tracker.get_metrics(it.id, key=key)] == [0, 1]
    # Every batch trained before it, once: 6 an epoch, then batches 0-2 of epoch 2.
    assert [m.step for m in tracker.get_metrics(it.id, key="batch/loss")] == list(range(1, 16))


@pytest.mark.slow
def test_through_a_server_killed_and_restarted_mid_fit(tmp_path, data):
    from faults.restartable import Outage, assert_each_step_once, killable_server

    X, y = data[0].astype("float32"), data[1].astype("float32")
    with killable_server(tmp_path) as server:
        cb = DiaryCallback("P", "keras", uri=server.url, flush_interval=0.1, log_every_n_batches=1)
        outage = Outage(server, kill=3, restart=9, before_kill=lambda: cb.run.open())

        class Outages(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):  # noqa: ANN001, ANN202
                outage.at(epoch)

        small_model().fit(X, y, epochs=15, batch_size=100, verbose=0, callbacks=[cb, Outages()])
        outage.check_done()
        tracker = connect(server.url)
        it = tracker.get_iteration(cb.iteration_id)
        assert it.status is IterationStatus.SUCCEEDED
        for key in ("loss", "accuracy"):
            assert_each_step_once(tracker, it.id, key, range(15))
        assert_each_step_once(tracker, it.id, "batch/loss", range(1, 46))  # 3 batches an epoch
        assert cb.run.dropped == 0
