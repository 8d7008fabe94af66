"""Contract: the model registry (models, numbered versions, stages, aliases), on every tracker kind."""

from __future__ import annotations

import threading

import pytest

from diary_integrations import Conflict, ExperimentStatus, ModelStage, Result, Unprocessable
from diary_integrations.registry import load_model, register_model_file


def _project_of(tracker, experiment_id):
    return tracker.get_experiment(experiment_id).project_id


def _other_project_iteration(tracker):
    project_id, _ = tracker.create_project("elsewhere")
    experiment_id, _ = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "other")
    iteration_id, _ = tracker.create_iteration(experiment_id, snapshot=False)
    return project_id, experiment_id, iteration_id


def _second_client(tracker):
    """Another tracker on the same database or server: a second process, as far as the rules go."""
    return type(tracker)(tracker.url)


def test_model_crud_and_unique_name(tracker, experiment_id):
    project_id = _project_of(tracker, experiment_id)
    model_id, result = tracker.create_model(project_id, "fraud-mlp", description="the fraud model")
    assert result is Result.CREATED
    model = tracker.get_model(model_id)
    assert (model.project_id, model.name, model.description) == (project_id, "fraud-mlp", "the fraud model")
    assert model.updated_date is None and model.created_date.tzinfo is not None
    assert tracker.get_model_by_name(project_id, "fraud-mlp").id == model_id
    assert tracker.get_model_by_name(project_id, "nope") is None
    with pytest.raises(Conflict, match="name"):
        tracker.create_model(project_id, "fraud-mlp")
    other_project, _, _ = _other_project_iteration(tracker)
    tracker.create_model(other_project, "fraud-mlp")  # unique per project only
    second, _ = tracker.create_model(project_id, "churn")
    assert [m.name for m in tracker.get_models(project_id)] == ["fraud-mlp", "churn"]
    assert [m.name for m in tracker.get_models(project_id, limit=1, offset=1)] == ["churn"]
    with pytest.raises(Conflict, match="name"):
        tracker.update_model(second, name="fraud-mlp")
    assert tracker.update_model(model_id, description="v2 of the text") is Result.UPDATED
    assert tracker.get_model(model_id).description == "v2 of the text"
    assert tracker.get_model(model_id).updated_date is not None
    assert tracker.delete_model(second) and tracker.get_model(second) is None
    assert not tracker.delete_model(second)
    assert tracker.get_model(999_999) is None and tracker.get_models(999_999) == []


def test_model_bad_input(tracker, experiment_id):
    project_id = _project_of(tracker, experiment_id)
    with pytest.raises(Unprocessable, match="project_id"):
        tracker.create_model(999_999, "m")
    with pytest.raises(Unprocessable, match="name"):
        tracker.create_model(project_id, "")
    with pytest.raises(Unprocessable, match="project_id"):
        tracker.create_model("1", "m")
    with pytest.raises(Unprocessable, match="model_id"):
        tracker.update_model(999_999, name="x")
    assert tracker.get_models(project_id) == []  # nothing written


def test_versions_numbered_per_model_and_never_reused(tracker, experiment_id):
    project_id = _project_of(tracker, experiment_id)
    a, _ = tracker.create_model(project_id, "a")
    b, _ = tracker.create_model(project_id, "b")
    iteration_id, _ = tracker.create_iteration(experiment_id, snapshot=False)
    resource_id, _ = tracker.create_resource(experiment_id, "w.bin", b"weights")
    v1, _ = tracker.create_model_version(a, iteration_id, resource_id=resource_id, description="first")
    v2, _ = tracker.create_model_version(a, iteration_id)
    b1, _ = tracker.create_model_version(b, iteration_id)
    first = tracker.get_model_version(v1)
    assert (first.model_id, first.version, first.iteration_id, first.resource_id) == (a, 1, iteration_id, resource_id)
    assert first.stage is ModelStage.NO_STAGE and first.description == "first"
    assert tracker.get_model_version(v2).version == 2 and tracker.get_model_version(b1).version == 1
    assert tracker.get_model_version(v2).resource_id is None
    assert tracker.delete_model_version(v2)
    v3, _ = tracker.create_model_version(a, iteration_id)
    assert tracker.get_model_version(v3).version == 3  # a deleted top number is not handed out again
    assert [v.version for v in tracker.get_model_versions(a)] == [1, 3]
    assert tracker.get_model_version(999_999) is None and tracker.get_model_versions(999_999) == []


def test_version_iteration_and_resource_must_be_in_the_models_project(tracker, experiment_id):
    project_id = _project_of(tracker, experiment_id)
    model_id, _ = tracker.create_model(project_id, "m")
    iteration_id, _ = tracker.create_iteration(experiment_id, snapshot=False)
    _, other_experiment, other_iteration = _other_project_iteration(tracker)
    foreign_resource, _ = tracker.create_resource(other_experiment, "w.bin", b"x")
    with pytest.raises(Unprocessable, match="iteration_id.*project"):
        tracker.create_model_version(model_id, other_iteration)
    with pytest.raises(Unprocessable, match="resource_id.*project"):
        tracker.create_model_version(model_id, iteration_id, resource_id=foreign_resource)
    with pytest.raises(Unprocessable, match="iteration_id"):
        tracker.create_model_version(model_id, 999_999)
    with pytest.raises(Unprocessable, match="resource_id"):
        tracker.create_model_version(model_id, iteration_id, resource_id=999_999)
    with pytest.raises(Unprocessable, match="model_id"):
        tracker.create_model_version(999_999, iteration_id)
    assert tracker.get_model_versions(model_id) == []  # nothing written, and no number used up
    version_id, _ = tracker.create_model_version(model_id, iteration_id)
    assert tracker.get_model_version(version_id).version == 1
    with pytest.raises(Unprocessable, match="resource_id.*project"):
        tracker.update_model_version(version_id, resource_id=foreign_resource)
    own, _ = tracker.create_resource(experiment_id, "w.bin", b"mine")
    tracker.update_model_version(version_id, resource_id=own)
    assert tracker.get_model_version(version_id).resource_id == own
    tracker.update_model_version(version_id, resource_id=None)
    assert tracker.get_model_version(version_id).resource_id is None


def test_stages_and_production_archives_the_others(tracker, experiment_id):
    project_id = _project_of(tracker, experiment_id)
    model_id, _ = tracker.create_model(project_id, "m")
    other_model, _ = tracker.create_model(project_id, "other")
    iteration_id, _ = tracker.create_iteration(experiment_id, snapshot=False)
    v1, v2, v3 = (tracker.create_model_version(model_id, iteration_id).id for _ in range(3))
    elsewhere = tracker.create_model_version(other_model, iteration_id).id
    tracker.update_model_version(elsewhere, stage=ModelStage.PRODUCTION)
    tracker.update_model_version(v1, stage="PRODUCTION")
    tracker.update_model_version(v3, stage=ModelStage.STAGING, description="candidate")
    assert tracker.get_model_version(v3).description == "candidate"
    assert tracker.update_model_version(v2, stage=3) is Result.UPDATED  # PRODUCTION, by number
    stages = {v.version: v.stage for v in tracker.get_model_versions(model_id)}
    assert stages == {1: ModelStage.ARCHIVED, 2: ModelStage.PRODUCTION, 3: ModelStage.STAGING}
    assert tracker.get_model_version(elsewhere).stage is ModelStage.PRODUCTION  # another model: untouched
    assert [v.version for v in tracker.get_model_versions(model_id, stage="PRODUCTION")] == [2]
    tracker.update_model_version(v1, stage=ModelStage.NO_STAGE)  # any stage may follow any other
    assert tracker.get_model_version(v1).stage is ModelStage.NO_STAGE
    with pytest.raises(Unprocessable, match="stage"):
        tracker.update_model_version(v1, stage=7)
    with pytest.raises(Unprocessable, match="stage"):
        tracker.update_model_version(v1, stage="LIVE")
    with pytest.raises(Unprocessable, match="model_version_id"):
        tracker.update_model_version(999_999, stage=ModelStage.STAGING)
    with pytest.raises(Unprocessable, match="stage"):
        tracker.get_model_versions(model_id, stage="LIVE")


def test_aliases_point_at_one_version_and_move(tracker, experiment_id):
    project_id = _project_of(tracker, experiment_id)
    model_id, _ = tracker.create_model(project_id, "m")
    iteration_id, _ = tracker.create_iteration(experiment_id, snapshot=False)
    v1, v2 = (tracker.create_model_version(model_id, iteration_id).id for _ in range(2))
    assert tracker.set_model_alias(model_id, "champion", 1) is Result.CREATED
    assert tracker.set_model_alias(model_id, "challenger", 2) is Result.CREATED
    assert tracker.set_model_alias(model_id, "champion", 2) is Result.UPDATED
    aliases = {a.alias: (a.version, a.model_version_id) for a in tracker.get_model_aliases(model_id)}
    assert aliases == {"champion": (2, v2), "challenger": (2, v2)}
    with pytest.raises(Unprocessable, match="version"):
        tracker.set_model_alias(model_id, "champion", 9)
    with pytest.raises(Unprocessable, match="model_id"):
        tracker.set_model_alias(999_999, "champion", 1)
    with pytest.raises(Unprocessable, match="alias"):
        tracker.set_model_alias(model_id, "", 1)
    assert tracker.delete_model_alias(model_id, "challenger")
    assert not tracker.delete_model_alias(model_id, "challenger")
    assert tracker.delete_model_version(v2)  # the alias on it goes with it
    assert tracker.get_model_aliases(model_id) == []
    assert tracker.get_model_version(v1) is not None


def test_deleting_the_iteration_or_project_takes_the_versions(tracker, experiment_id):
    project_id = _project_of(tracker, experiment_id)
    model_id, _ = tracker.create_model(project_id, "m")
    iteration_id, _ = tracker.create_iteration(experiment_id, snapshot=False)
    resource_id, _ = tracker.create_resource(experiment_id, "w.bin", b"w")
    version_id, _ = tracker.create_model_version(model_id, iteration_id, resource_id=resource_id)
    assert tracker.delete_resource(resource_id)
    assert tracker.get_model_version(version_id).resource_id is None  # the version stays
    assert tracker.delete_iteration(iteration_id)
    assert tracker.get_model_version(version_id) is None
    assert tracker.delete_project(project_id)
    assert tracker.get_model(model_id) is None


def test_two_clients_creating_versions_get_distinct_numbers(tracker, experiment_id):
    project_id = _project_of(tracker, experiment_id)
    model_id, _ = tracker.create_model(project_id, "raced")
    iteration_id, _ = tracker.create_iteration(experiment_id, snapshot=False)
    others = [_second_client(tracker) for _ in range(2)]
    rounds, errors = 4, []
    try:
        for _ in range(rounds):
            barrier = threading.Barrier(2)

            def create(client, barrier=barrier):
                try:
                    barrier.wait(timeout=60)
                    client.create_model_version(model_id, iteration_id)
                except Exception as exc:  # any failure (a duplicate, a 500) fails the test below
                    errors.append(exc)

            threads = [threading.Thread(target=create, args=(c,)) for c in others]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
    finally:
        for client in others:
            client.close()
    assert errors == []
    assert [v.version for v in tracker.get_model_versions(model_id)] == list(range(1, 2 * rounds + 1))


def test_two_clients_promoting_at_once_leave_exactly_one_in_production(tracker, experiment_id):
    project_id = _project_of(tracker, experiment_id)
    model_id, _ = tracker.create_model(project_id, "promoted")
    iteration_id, _ = tracker.create_iteration(experiment_id, snapshot=False)
    others = [_second_client(tracker) for _ in range(2)]
    errors = []
    try:
        for _ in range(4):
            ids = [tracker.create_model_version(model_id, iteration_id).id for _ in range(2)]
            barrier = threading.Barrier(2)

            def promote(client, version_id, barrier=barrier):
                try:
                    barrier.wait(timeout=60)
                    client.update_model_version(version_id, stage=ModelStage.PRODUCTION)
                except Exception as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=promote, args=pair) for pair in zip(others, ids, strict=True)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
            assert errors == []
            in_production = tracker.get_model_versions(model_id, stage=ModelStage.PRODUCTION)
            assert len(in_production) == 1 and in_production[0].id in ids
    finally:
        for client in others:
            client.close()
    stages = [v.stage for v in tracker.get_model_versions(model_id)]
    assert stages.count(ModelStage.PRODUCTION) == 1 and stages.count(ModelStage.ARCHIVED) == 7


def test_register_and_load_by_stage_alias_and_version(tracker, experiment_id, tmp_path):
    iteration_id, _ = tracker.create_iteration(experiment_id, snapshot=False)
    first = register_model_file(tracker, iteration_id, b"weights-1", "fraud-mlp", resource_name="w1.bin")
    weights = tmp_path / "w2.bin"
    weights.write_bytes(b"weights-2")
    second = register_model_file(tracker, iteration_id, weights, "fraud-mlp")
    assert (first.version, second.version) == (1, 2)
    assert tracker.get_resource(second.resource_id).name == "w2.bin"
    tracker.update_model_version(first.id, stage=ModelStage.PRODUCTION)
    tracker.set_model_alias(first.model_id, "champion", 2)
    assert load_model("fraud-mlp", stage="PRODUCTION", tracker=tracker) == b"weights-1"
    assert load_model("fraud-mlp", alias="champion", tracker=tracker) == b"weights-2"
    assert load_model("fraud-mlp", version=1, tracker=tracker) == b"weights-1"
    assert load_model("fraud-mlp", tracker=tracker) == b"weights-2"  # the latest
    written = load_model("fraud-mlp", stage=ModelStage.PRODUCTION, path=tmp_path, tracker=tracker)
    assert written == tmp_path / "w1.bin" and written.read_bytes() == b"weights-1"
    with pytest.raises(Unprocessable, match="alias"):
        load_model("fraud-mlp", alias="nobody", tracker=tracker)
    with pytest.raises(Unprocessable, match="stage"):
        load_model("fraud-mlp", stage="STAGING", tracker=tracker)
    with pytest.raises(Unprocessable, match="name"):
        load_model("no-such-model", tracker=tracker)
