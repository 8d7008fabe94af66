"""Issue 14, names: unique project names, experiment names unique within a project (with a migration that
keeps databases holding duplicates working), exact get-or-create in integrations, iteration names."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from diary_integrations import Conflict, ExperimentStatus, LocalTracker, NewIteration
from diary_integrations.resolve import experiment_for
from diary_integrations.tracker.database import write_transaction
from diary_integrations.tracker.migrate import alembic_config


def test_duplicate_names_conflict(tracker):
    project, _ = tracker.create_project("Fraud detection")
    with pytest.raises(Conflict, match="name"):
        tracker.create_project("Fraud detection")
    other, _ = tracker.create_project("fraud detection")  # exact: another case is another name
    with pytest.raises(Conflict):
        tracker.update_project(other, name="Fraud detection")
    tracker.update_project(project, name="Fraud detection")  # its own name is no conflict
    tracker.create_experiment(project, ExperimentStatus.IN_PROGRESS, "sweep")
    with pytest.raises(Conflict, match="name"):
        tracker.create_experiment(project, ExperimentStatus.IN_PROGRESS, "sweep")
    second, _ = tracker.create_experiment(other, ExperimentStatus.IN_PROGRESS, "sweep")  # another project
    renamed, _ = tracker.create_experiment(other, ExperimentStatus.IN_PROGRESS, "sweep 2")
    with pytest.raises(Conflict):
        tracker.update_experiment(renamed, name="sweep")
    assert [p.name for p in tracker.get_projects()] == ["Fraud detection", "fraud detection"]
    assert experiment_for(tracker, "fraud detection", "sweep") == second
    assert len(tracker.get_projects()) == 2  # found, not created


def test_iteration_names(tracker):
    project, _ = tracker.create_project("P")
    experiment, _ = tracker.create_experiment(project, ExperimentStatus.IN_PROGRESS, "E")
    driver, _ = tracker.create_iteration(experiment, name="grid")
    kids = tracker.create_iterations(
        experiment, [NewIteration("", {"C": 1.0}, "C=1.0"), NewIteration()], parent_iteration_id=driver
    )
    with tracker.with_iteration(experiment, parent_iteration_id=driver, name="by hand") as it:
        pass
    assert tracker.get_iteration(driver).name == "grid"
    assert [c.name for c in tracker.get_child_iterations(driver)] == ["C=1.0", "", "by hand"]
    assert tracker.get_iteration(it.id).name == "by hand"
    assert kids


def test_migration_renames_existing_duplicates(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with write_transaction(engine) as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "0002")
    with engine.begin() as conn:
        now = "2026-01-01 00:00:00"
        for pid, name in [(1, "Fraud"), (2, "Fraud"), (3, "Fraud (2)"), (4, "Fraud")]:
            conn.execute(text("INSERT INTO project (id, name, description, created_date) VALUES (:i, :n, '', :d)"),
                         {"i": pid, "n": name, "d": now})
        for eid, pid, name in [(1, 1, "E"), (2, 1, "E"), (3, 2, "E")]:
            conn.execute(text("INSERT INTO experiment (id, project_id, status, name, description, created_date) "
                              "VALUES (:i, :p, 1, :n, '', :d)"), {"i": eid, "p": pid, "n": name, "d": now})
        conn.execute(text("INSERT INTO iteration (id, experiment_id, status, notes, error_message, traceback, "
                          "created_date, heartbeat_date) VALUES (1, 2, 2, '', '', '', :d, :d)"), {"d": now})
        conn.execute(text("INSERT INTO metric (iteration_id, key, value, step, recorded_at) "
                          "VALUES (1, 'loss', 0.5, 0, 0.0)"))
    engine.dispose()
    tracker = LocalTracker(url)
    assert [p.name for p in tracker.get_projects()] == ["Fraud", "Fraud (3)", "Fraud (2)", "Fraud (4)"]
    assert [e.name for e in tracker.get_experiments(1)] == ["E", "E (2)"]
    assert [e.name for e in tracker.get_experiments(2)] == ["E"]
    assert tracker.get_project_by_name("Fraud").id == 1  # the row integrations resolved the name to
    assert tracker.get_iteration(1).name == "" and [m.value for m in tracker.get_metrics(1)] == [0.5]
    with pytest.raises(Conflict):
        tracker.create_project("Fraud (4)")
    tracker.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_concurrent_get_or_create_ends_with_one_row(kind, tmp_path, request):
    import threading

    url = f"sqlite:///{tmp_path / 'race.db'}" if kind == "sqlite" else request.getfixturevalue("postgres_url")
    migrated = LocalTracker(url)
    migrated.get_projects()  # the schema built once, before the race: this test is about the rows
    migrated.close()
    trackers = [LocalTracker(url) for _ in range(4)]
    barrier = threading.Barrier(len(trackers))
    found: list[int] = []

    def resolve(tracker: LocalTracker) -> None:
        barrier.wait()
        found.append(experiment_for(tracker, "Fraud detection", "sweep"))

    threads = [threading.Thread(target=resolve, args=(t,)) for t in trackers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 4 and len(set(found)) == 1
    assert [p.name for p in trackers[0].get_projects()] == ["Fraud detection"]
    for tracker in trackers:
        tracker.close()


def test_ranks_opening_a_new_sqlite_file_at_once_all_get_in(tmp_path):
    """Switching a new file to WAL takes an exclusive lock SQLite does not wait for: four trackers
    opening the same new file at once (the ranks of a job) each get in, and the schema is built once."""
    import threading

    for attempt in range(5):  # the race is narrow; five new files make a lost one likely
        url = f"sqlite:///{tmp_path / f'new{attempt}.db'}"
        trackers = [LocalTracker(url) for _ in range(4)]
        barrier = threading.Barrier(len(trackers))
        errors: list[BaseException] = []

        def open_it(tracker: LocalTracker, barrier: threading.Barrier, errors: list[BaseException]) -> None:
            barrier.wait()
            try:
                tracker.get_projects()
            except BaseException as error:  # noqa: BLE001 - the test reports what each thread met
                errors.append(error)

        threads = [threading.Thread(target=open_it, args=(t, barrier, errors)) for t in trackers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert trackers[0].get_projects() == []
        for tracker in trackers:
            tracker.close()
