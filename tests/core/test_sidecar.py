"""SidecarTracker beyond the contract suite (which runs every Tracker method through it as the
`sidecar-sqlite` kind): what it exposes, how it pickles, which URIs get one."""

from __future__ import annotations

import os
import pickle

import pytest

from diary_integrations import ExperimentStatus, LocalTracker, connect
from diary_integrations.sidecar import SidecarTracker


def test_it_has_the_local_trackers_methods_and_nothing_else(tmp_path):
    tracker = SidecarTracker(tmp_path / "runs.db")
    try:
        assert callable(tracker.log_metric_points) and tracker.url == f"sqlite:///{tmp_path / 'runs.db'}"
        # Integrations tell transports apart by what they have: a sidecar is not an HTTP client.
        assert getattr(tracker, "metric_points_write", None) is None and getattr(tracker, "replay", None) is None
        with pytest.raises(TypeError, match="name"):  # a builtin error comes back as itself
            tracker.create_experiment(1, ExperimentStatus.IN_PROGRESS)
    finally:
        tracker.close(wait=True)
    assert tracker.pid is None


def test_it_pickles_to_its_database_and_a_copy_starts_a_sidecar_of_its_own(tmp_path):
    tracker = SidecarTracker(tmp_path / "runs.db")
    project, _ = tracker.create_project("P")
    copy = pickle.loads(pickle.dumps(tracker))
    assert copy.pid is None  # nothing started until it is used
    assert copy.get_project(project).name == "P" and copy.pid not in (None, tracker.pid)
    for each in (tracker, copy):
        each.close(wait=True)


def test_a_relative_path_names_the_same_file_after_a_chdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tracker = SidecarTracker("runs.db")
    (tmp_path / "elsewhere").mkdir()
    os.chdir(tmp_path / "elsewhere")
    tracker.create_project("P")
    tracker.close(wait=True)
    assert [p.name for p in LocalTracker(tmp_path / "runs.db").get_projects()] == ["P"]


def test_connect_gives_a_sidecar_only_for_a_database_it_can_hold(tmp_path):
    assert isinstance(connect(tmp_path / "runs.db", sidecar=True), SidecarTracker)
    assert isinstance(connect("sqlite:///:memory:", sidecar=True), LocalTracker)  # it would die with the sidecar
    assert type(connect("http://127.0.0.1:9", sidecar=True)).__name__ == "RemoteTracker"
    assert isinstance(connect(tmp_path / "runs.db"), LocalTracker)  # the default is unchanged
