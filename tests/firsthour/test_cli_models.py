"""`diary models` and `diary promote`: the registry from the command line, as text and as JSON."""

from __future__ import annotations

import json

import pytest

from diary_integrations import ExperimentStatus, LocalTracker, ModelStage

from .test_cli import cli


@pytest.fixture
def registry_db(tmp_path):
    path = tmp_path / "runs.db"
    tracker = LocalTracker(path)
    project_id, _ = tracker.create_project("Fraud detection")
    experiment_id, _ = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "MLP")
    iteration_id, _ = tracker.create_iteration(experiment_id, snapshot=False)
    model_id, _ = tracker.create_model(project_id, "fraud-mlp")
    for _ in range(2):
        tracker.create_model_version(model_id, iteration_id)
    tracker.set_model_alias(model_id, "champion", 1)
    yield str(path), tracker, model_id, iteration_id
    tracker.close()


def test_models_lists_versions_stages_and_aliases(capsys, registry_db):
    path, _, model_id, iteration_id = registry_db
    ran = cli(capsys, "models", "--uri", path)
    assert ran.returncode == 0, ran.stderr
    assert f"Fraud detection / fraud-mlp (#{model_id}): 2 version(s)" in ran.stdout
    assert f"v1    NO_STAGE   iteration #{iteration_id}  [champion]" in ran.stdout
    ran = cli(capsys, "models", "--uri", path, "--json", "--project", "Fraud detection")
    [model] = json.loads(ran.stdout)
    assert model["name"] == "fraud-mlp" and [v["stage"] for v in model["versions"]] == ["NO_STAGE"] * 2
    assert model["versions"][0]["aliases"] == ["champion"]


def test_promote_moves_a_version_and_archives_the_previous_one(capsys, registry_db):
    path, tracker, model_id, _ = registry_db
    assert cli(capsys, "promote", "fraud-mlp", "1", "production", "--uri", path).returncode == 0
    ran = cli(capsys, "promote", "fraud-mlp", "2", "PRODUCTION", "--uri", path, "--json")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["stage"] == "PRODUCTION"
    stages = [v.stage for v in tracker.get_model_versions(model_id)]
    assert stages == [ModelStage.ARCHIVED, ModelStage.PRODUCTION]


def test_promote_refuses_bad_input_in_one_line(capsys, registry_db):
    path, tracker, model_id, _ = registry_db
    ran = cli(capsys, "promote", "fraud-mlp", "9", "PRODUCTION", "--uri", path)
    assert ran.returncode == 1 and "no version numbered 9" in ran.stderr
    ran = cli(capsys, "promote", "fraud-mlp", "1", "LIVE", "--uri", path)
    assert ran.returncode == 1 and "stage" in ran.stderr
    ran = cli(capsys, "promote", "nope", "1", "STAGING", "--uri", path)
    assert ran.returncode == 1 and "no model named 'nope'" in ran.stderr
    assert [v.stage for v in tracker.get_model_versions(model_id)] == [ModelStage.NO_STAGE] * 2
