"""`diary import mlflow --from URI --to DB`: an MLflow store written by MLflow's own client becomes diary
experiments and iteration trees; importing again copies nothing twice."""

from __future__ import annotations

import math

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric

from diary_integrations import IterationStatus, LocalTracker
from diary_integrations.cli import main


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the source is named explicitly
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 writes its file store only when asked
    uri = (tmp_path / "mlruns").as_uri()
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("legacy", tags={"team": "nlp"})
    parent = client.create_run(experiment, run_name="sweep", start_time=1_700_000_000_000)
    client.log_param(parent.info.run_id, "grid", "C")
    child_ids = []
    for n, c in enumerate((0.1, 1.0)):
        child = client.create_run(experiment, run_name=f"C={c}", tags={"mlflow.parentRunId": parent.info.run_id})
        client.log_param(child.info.run_id, "C", str(c))
        client.log_batch(
            child.info.run_id, metrics=[Metric("loss", 1.0 / (s + 1 + n), 1_700_000_000_000 + s, s) for s in range(4)]
        )
        child_ids.append(child.info.run_id)
    grandchild = client.create_run(experiment, run_name="fold", tags={"mlflow.parentRunId": child_ids[0]})
    client.set_tag(grandchild.info.run_id, "mlflow.note.content", "fold diverged")
    client.set_terminated(grandchild.info.run_id, "FAILED", end_time=1_700_000_100_000)
    for run_id in child_ids + [parent.info.run_id]:
        client.set_terminated(run_id, "FINISHED")
    client.create_run(experiment, run_name="abandoned")  # still RUNNING in the source
    return uri, parent.info.run_id


def test_import_copies_trees_and_series_once(mlflow_store, tmp_path, capsys) -> None:
    uri, parent_run = mlflow_store
    target = f"sqlite:///{tmp_path / 'diary.db'}"
    assert main(["import", "mlflow", "--from", uri, "--to", target]) == 0
    assert "imported 5 run(s) (8 metric points)" in capsys.readouterr().out
    assert main(["import", "mlflow", "--from", uri, "--to", target]) == 0
    again = capsys.readouterr().out
    assert "imported 0 run(s)" in again and "5 copied before were skipped" in again

    tracker = LocalTracker(target)
    try:
        project = tracker.get_project_by_name("mlflow")
        experiment = tracker.get_experiment_by_name(project.id, "legacy")
        runs = {i.name: i for i in tracker.get_iterations(experiment.id)}
        assert sorted(runs) == ["C=0.1", "C=1.0", "abandoned", "fold", "sweep"]
        sweep, fold = runs["sweep"], runs["fold"]
        assert sweep.parent_iteration_id is None and sweep.status is IterationStatus.SUCCEEDED
        assert sweep.created_date.timestamp() == 1_700_000_000
        assert {c.name for c in tracker.get_child_iterations(sweep.id)} == {"C=0.1", "C=1.0"}
        assert fold.parent_iteration_id == runs["C=0.1"].id
        assert fold.status is IterationStatus.FAILED and fold.error_message == "fold diverged"
        assert fold.end_date.timestamp() == 1_700_000_100
        assert runs["abandoned"].status is IterationStatus.KILLED and "RUNNING" in runs["abandoned"].error_message
        points = [(m.step, m.value) for m in tracker.get_metrics(runs["C=1.0"].id, key="loss")]
        assert [s for s, _ in points] == [0, 1, 2, 3] and math.isclose(points[0][1], 0.5)
        assert {p.key: p.value for p in tracker.get_parameters(runs["C=0.1"].id)} == {"C": "0.1"}
    finally:
        tracker.close()
