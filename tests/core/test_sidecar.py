"""SidecarTracker beyond the contract suite (which runs every Tracker method through it as the
`sidecar-sqlite` kind): what it exposes, how it pickles, which URIs get one."""

from __future__ import annotations

import os
import pickle
import signal

import pytest
from processes import left

from diary_integrations import ExperimentStatus, LocalTracker, connect
from diary_integrations.sidecar import SidecarTracker


def test_it_has_the_local_trackers_methods_and_nothing_else(tmp_path):
    tracker = SidecarTracker(tmp_path / "runs.db")
    try:
        assert callable(tracker.log_metric_points) and tracker.url == f"sqlite:///{tmp_path / 'runs.db'}"
        # Integrations tell transports apart by what they have: a sidecar is not an HTTP client.
        assert getattr(tracker, "metric_points_write", None) is None and getattr(tracker, "replay", None) is None
        with open(f"/proc/{tracker.pid}/cmdline", "rb") as cmdline:  # `ps` would show a URL's password
            assert b"runs.db" not in cmdline.read()
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


@pytest.mark.timeout(60)
def test_a_forked_child_lets_go_of_its_parents_sidecar_and_gets_one_of_its_own(tmp_path):
    """A DataLoader worker is a fork: it must not keep the parent's sidecar alive once the parent closed
    it, nor ever write on the parent's pipe."""
    tracker = SidecarTracker(tmp_path / "runs.db")
    project, _ = tracker.create_project("P")
    first = tracker.pid
    go_read, go_write = os.pipe()
    answer_read, answer_write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.close(go_write)
            os.close(answer_read)
            os.read(go_read, 1)  # the tracker untouched until the parent has closed its own sidecar
            ok = tracker.get_project(project).name == "P" and tracker.pid not in (None, first)
            tracker.close(wait=True)
            os.write(answer_write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(go_read)
    os.close(answer_write)
    try:
        tracker.close()
        assert left(first, timeout=5)  # its pipe closed with the parent's close, although the child still lives
        os.write(go_write, b"g")
        assert os.read(answer_read, 1) == b"1"
    finally:
        os.close(go_write)  # a child still waiting reads EOF and exits
        os.close(answer_read)
        os.waitpid(child, 0)


def test_a_sidecar_gone_between_calls_is_replaced_for_any_call(tmp_path):
    """A request that could not even be written was never applied: it goes to a new sidecar, although
    an update is neither a read nor a keyed write (those are the only ones sent again after a death
    mid-call: tests/faults/test_sidecar_faults.py)."""
    tracker = SidecarTracker(tmp_path / "runs.db")
    project, _ = tracker.create_project("P")
    first = tracker.pid
    os.kill(first, signal.SIGKILL)
    assert left(first, timeout=10)
    tracker.update_project(project, description="after")
    assert tracker.pid not in (None, first) and tracker.get_project(project).description == "after"
    tracker.close(wait=True)
