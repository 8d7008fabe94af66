"""DiaryCallback on a real Trainer: a tiny BERT classifier trained for 30 steps on the CPU."""

from __future__ import annotations

import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from diary_integrations import IterationStatus, connect
from diary_integrations.tracker.errors import Unprocessable

tiny_bert = pytest.importorskip("tiny_bert")
from diary_integrations.transformers import DiaryCallback  # noqa: E402

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent


def series(tracker, iteration_id: int) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for point in tracker.get_metrics(iteration_id):
        out.setdefault(point.key, {})[point.step] = point.value
    return out


def test_thirty_steps_record_arguments_config_series_model_and_success(uri, tmp_path):
    callback = DiaryCallback("Transformers", "tiny", uri=uri, log_model=True, register_as="tiny-bert")
    trainer = tiny_bert.trainer(tiny_bert.arguments(tmp_path / "out"), [callback], compute_metrics=tiny_bert.accuracy)
    trainer.train()
    tracker = connect(uri)
    run = tracker.get_iteration(callback.iteration_id)
    assert run.status is IterationStatus.SUCCEEDED and run.parent_iteration_id is None
    params = {p.key: p.value for p in tracker.get_parameters(run.id)}
    # The arguments the test changed, not the ones left at their defaults; the whole model config.
    assert params["args/max_steps"] == "30" and params["args/logging_steps"] == "5"
    assert params["args/eval_strategy"] == "steps" and params["args/learning_rate"] == "0.001"
    assert "args/seed" not in params and "args/weight_decay" not in params
    assert params["config/hidden_size"] == "8" and params["config/num_hidden_layers"] == "1"
    assert params["config/model_type"] == "bert"
    found = series(tracker, run.id)
    assert sorted(found["train/loss"]) == [5, 10, 15, 20, 25, 30]
    assert sorted(found["eval/loss"]) == [10, 20, 30] and sorted(found["eval/accuracy"]) == [10, 20, 30]
    assert found["eval/loss"][30] == pytest.approx(trainer.state.log_history[-2]["eval_loss"])
    assert list(found["train/train_loss"]) == [30]
    # log_model: the trained model as a zip of its config and weights, registered after the success.
    (model,) = [m for m in tracker.get_models(tracker.get_experiment(run.experiment_id).project_id)]
    (version,) = tracker.get_model_versions(model.id)
    assert model.name == "tiny-bert" and version.iteration_id == run.id
    resource = tracker.get_resource(version.resource_id)
    assert resource.name == f"iteration-{run.id}/model-step-30.zip"
    # A copy for another process (Ray pickles the Trainer and its callbacks) takes no run along.
    copy = pickle.loads(pickle.dumps(callback))
    assert copy.iteration_id is None and copy._project == "Transformers"


def test_compute_metrics_raising_at_the_first_evaluation_ends_the_run_failed_with_its_text(sqlite_uri, tmp_path):
    def exploding(prediction):
        raise ValueError("accuracy exploded at the first evaluation")

    callback = DiaryCallback("Transformers", "tiny", uri=sqlite_uri)
    trainer = tiny_bert.trainer(tiny_bert.arguments(tmp_path / "out"), [callback], compute_metrics=exploding)
    with pytest.raises(ValueError, match="accuracy exploded"):
        trainer.train()
    tracker = connect(sqlite_uri)
    run = tracker.get_iteration(callback.iteration_id)
    assert run.status is IterationStatus.FAILED
    assert run.error_message == "ValueError: accuracy exploded at the first evaluation"
    assert "in exploding" in run.traceback and "raise ValueError" in run.traceback
    assert sorted(series(tracker, run.id)["train/loss"]) == [5, 10]  # what was logged before it is kept


def test_ctrl_c_ends_the_run_killed_and_a_next_train_is_a_new_run(sqlite_uri, tmp_path):
    class Interrupt(tiny_bert.TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3 and not self.done:
                self.done = True
                raise KeyboardInterrupt

        done = False

    callback = DiaryCallback("Transformers", "tiny", uri=sqlite_uri)
    trainer = tiny_bert.trainer(tiny_bert.arguments(tmp_path / "out", max_steps=5, eval_strategy="no"),
                                [callback, Interrupt()])
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    trainer.train()
    tracker = connect(sqlite_uri)
    first, second = (tracker.get_iteration(i) for i in callback.iteration_ids)
    assert first.status is IterationStatus.KILLED and first.error_message == "KeyboardInterrupt"
    assert second.status is IterationStatus.SUCCEEDED and second.id != first.id


def test_sigterm_ends_the_run_killed(sqlite_uri, tmp_path):
    done = subprocess.run(
        [sys.executable, str(HERE / "tiny_bert.py"), sqlite_uri, "sigterm", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert done.returncode != 0, done.stdout
    tracker = connect(sqlite_uri)
    (run,) = tracker.get_iterations(1)
    assert run.status is IterationStatus.KILLED, (run, done.stderr[-3000:])
    assert run.error_message == f"Terminated: received {signal.SIGTERM.name}" or "SIGTERM" in run.error_message
    assert sorted(series(tracker, run.id)["train/loss"]) == [5]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"project": " "}, "project"),
        ({"uri": 3}, "uri"),
        ({"log_model": "all"}, "log_model"),
        ({"register_as": "m"}, "register_as"),
        ({"parent_iteration_id": 0}, "parent_iteration_id"),
        ({"sidecar": "yes"}, "sidecar"),
    ],
)
def test_bad_arguments_are_refused_naming_the_field(kwargs, field, tmp_path):
    arguments = {"project": "P", "experiment": "E", "uri": f"sqlite:///{tmp_path / 'x.db'}", **kwargs}
    with pytest.raises(Unprocessable) as refused:
        DiaryCallback(**arguments)
    assert refused.value.field == field
    assert not (tmp_path / "x.db").exists()  # nothing written


def test_through_a_server_killed_and_restarted_mid_training(tmp_path):
    from faults.restartable import Outage, assert_each_step_once, killable_server

    with killable_server(tmp_path) as server:
        callback = DiaryCallback("Transformers", "tiny", uri=server.url)
        # The run exists before the server goes (its opening is on a thread of the run's own).
        outage = Outage(server, kill=7, restart=22, before_kill=lambda: callback._run.open())

        class Outages(tiny_bert.TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                outage.at(state.global_step)

        args = tiny_bert.arguments(tmp_path / "out", logging_steps=1)
        tiny_bert.trainer(args, [callback, Outages()], compute_metrics=tiny_bert.accuracy).train()
        outage.check_done()
        tracker = connect(server.url)
        run = tracker.get_iteration(callback.iteration_id)
        assert run.status is IterationStatus.SUCCEEDED
        assert_each_step_once(tracker, run.id, "train/loss", range(1, 31))
        for key in ("eval/loss", "eval/accuracy"):
            assert_each_step_once(tracker, run.id, key, [10, 20, 30])
        assert_each_step_once(tracker, run.id, "train/train_loss", [30])
