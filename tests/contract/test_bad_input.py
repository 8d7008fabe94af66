"""Contract: bad input gets a typed error naming the field and the rule, and writes nothing."""

from __future__ import annotations

import math

import pytest

from diary_integrations import Unprocessable

LONG_NAME = "x" * 251


@pytest.fixture
def world(tracker, experiment_id):
    """An experiment with one running iteration, and a way to count every row a call could write."""
    iteration_id, _ = tracker.create_iteration(experiment_id)

    def snapshot():
        project_id = tracker.get_experiment(experiment_id).project_id
        return (
            len(tracker.get_projects()),
            len(tracker.get_experiments(project_id)),
            len(tracker.get_iterations(experiment_id)),
            len(tracker.get_parameters(iteration_id)),
            len(tracker.get_metrics(iteration_id)),
            len(tracker.get_tags()),
            len(tracker.get_resources(experiment_id)),
        )

    return {"exp": experiment_id, "it": iteration_id, "snapshot": snapshot}


CASES = [
    # (name, call, field named in the error)
    ("unknown project", lambda t, w: t.create_experiment(999_999, 1, "E"), "project_id"),
    ("unknown experiment", lambda t, w: t.create_iteration(999_999), "experiment_id"),
    ("unknown iteration for parameter", lambda t, w: t.create_parameter(999_999, "k", 1), "iteration_id"),
    ("unknown iteration for metric", lambda t, w: t.create_metric(999_999, "k", 1.0), "iteration_id"),
    ("unknown iteration for batch", lambda t, w: t.log_metrics(999_999, {"k": 1.0}), "iteration_id"),
    ("unknown experiment for resource", lambda t, w: t.create_resource(999_999, "r", b"x"), "experiment_id"),
    ("id as text", lambda t, w: t.create_iteration(str(w["exp"])), "experiment_id"),
    ("id as bool", lambda t, w: t.create_metric(True, "k", 1.0), "iteration_id"),
    ("negative id", lambda t, w: t.create_iteration(-3), "experiment_id"),
    ("metric value as text", lambda t, w: t.create_metric(w["it"], "loss", "0.5"), "value"),
    ("metric value None", lambda t, w: t.create_metric(w["it"], "loss", None), "value"),
    ("metric key not text", lambda t, w: t.create_metric(w["it"], 123, 0.5), "key"),
    ("empty metric key", lambda t, w: t.create_metric(w["it"], "  ", 0.5), "key"),
    ("negative step", lambda t, w: t.create_metric(w["it"], "loss", 0.5, step=-1), "step"),
    ("fractional step", lambda t, w: t.create_metric(w["it"], "loss", 0.5, step=1.5), "step"),
    ("NaN step", lambda t, w: t.create_metric(w["it"], "loss", 0.5, step=math.nan), "step"),
    ("step as text", lambda t, w: t.log_metrics(w["it"], {"loss": 0.5}, step="3"), "step"),
    ("batch not a mapping", lambda t, w: t.log_metrics(w["it"], [("loss", 0.5)]), "metrics"),
    ("one bad value spoils the batch", lambda t, w: t.log_metrics(w["it"], {"a": 1.0, "b": [1]}), "metrics['b']"),
    ("empty parameter key", lambda t, w: t.create_parameter(w["it"], "", 1), "key"),
    ("parameter value a set", lambda t, w: t.create_parameter(w["it"], "layers", {64, 32}), "value"),  # lists are JSON
    ("parameter value too long", lambda t, w: t.create_parameter(w["it"], "k", "v" * 8001), "value"),
    ("parameter key too long", lambda t, w: t.create_parameter(w["it"], LONG_NAME, 1), "key"),
    ("bad parameter in batch", lambda t, w: t.log_parameters(w["it"], {"a": 1, "b": {object()}}), "parameters['b']"),
    ("project name too long", lambda t, w: t.create_project(LONG_NAME), "name"),
    ("empty project name", lambda t, w: t.create_project(""), "name"),
    ("project name not text", lambda t, w: t.create_project(42), "name"),
    ("experiment name too long", lambda t, w: t.create_experiment(1, 1, LONG_NAME), "name"),
    ("notes too long", lambda t, w: t.create_iteration(w["exp"], notes="n" * 70_000), "notes"),
    ("NUL in a name", lambda t, w: t.create_project("a\x00b"), "name"),
    ("tag on an unknown target kind", lambda t, w: t.add_tag("model", w["it"], "x"), "target"),
    ("empty tag", lambda t, w: t.add_tag("iteration", w["it"], ""), "value"),
    ("resource data not bytes", lambda t, w: t.create_resource(w["exp"], "r", {"a": 1}), "data"),
    ("negative limit", lambda t, w: t.get_iterations(w["exp"], limit=-1), "limit"),
    ("unknown parent", lambda t, w: t.create_iteration(w["exp"], parent_iteration_id=999_999), "parent_iteration_id"),
]


@pytest.mark.parametrize(("name", "call", "field"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_and_writes_nothing(tracker, world, name, call, field):
    before = world["snapshot"]()
    with pytest.raises(Unprocessable) as err:
        call(tracker, world)
    assert field in str(err.value), f"{name}: the message should name {field!r}: {err.value}"
    assert world["snapshot"]() == before
