"""The batched writes both scikit-learn paths share: children created a batch at a time, and ended a
batch at a time without letting one refused ending keep its siblings RUNNING."""

from __future__ import annotations

import socket

import pytest

from diary_integrations import (
    ExperimentStatus,
    IterationStatus,
    NewIteration,
    RemoteTracker,
    TransportError,
    Unprocessable,
    connect,
)
from diary_integrations.sklearn._writer import ending, finish_many, start_many
from diary_integrations.tracker.validation import MAX_BATCH


@pytest.fixture
def tree(uri):
    tracker = connect(uri)
    project, _ = tracker.create_project("P")
    experiment, _ = tracker.create_experiment(project, ExperimentStatus.IN_PROGRESS, "E")
    driver, _ = tracker.create_iteration(experiment)
    yield tracker, experiment, driver
    tracker.close()


def test_start_many_creates_running_children_in_order(tree):
    tracker, experiment, driver = tree
    ids = start_many(tracker, experiment, parent=driver,
                     children=[NewIteration(f"candidate {n}", {"n": n}) for n in range(5)])
    kids = tracker.get_child_iterations(driver)
    assert [k.id for k in kids] == ids and [k.notes for k in kids] == [f"candidate {n}" for n in range(5)]
    assert all(k.status is IterationStatus.RUNNING for k in kids)
    assert tracker.get_parameter_values(ids)[ids[3]] == {"n": "3"}


def test_one_refused_ending_leaves_no_sibling_running(tree):
    tracker, experiment, driver = tree
    ids = start_many(tracker, experiment, parent=driver, children=[NewIteration(str(n)) for n in range(4)])
    tracker.end_iteration(ids[2], IterationStatus.KILLED)  # its ending below is refused: already ended
    endings = [ending(i, IterationStatus.SUCCEEDED, points=[("score", 0.5, 0)]) for i in ids]
    heard = []
    failed = finish_many(tracker, endings, on_error=lambda child, exc: heard.append((child, str(exc))))
    assert failed == {ids[2]}
    assert len(heard) == 1 and heard[0][0] == ids[2] and "already ended as KILLED" in heard[0][1]
    statuses = [tracker.get_iteration(i).status for i in ids]
    assert statuses == [IterationStatus.SUCCEEDED] * 2 + [IterationStatus.KILLED, IterationStatus.SUCCEEDED]
    assert [m.value for m in tracker.get_metrics(ids[3])] == [0.5] and tracker.get_metrics(ids[2]) == []


def test_without_on_error_a_refused_ending_raises(tree):
    tracker, experiment, driver = tree
    (child,) = start_many(tracker, experiment, parent=driver, children=[NewIteration("only")])
    tracker.end_iteration(child)
    with pytest.raises(Unprocessable, match="already ended"):
        finish_many(tracker, [ending(child, IterationStatus.FAILED)], on_error=None)


def test_a_tracker_that_is_gone_is_reported_once(tmp_path):
    """When the tracker itself fails (here: nothing listens at the URL), finish_many reports once and tries
    nothing more, rather than retrying every ending through the same failure."""
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gone = RemoteTracker(f"http://127.0.0.1:{port}", timeout=2.0)
    heard = []
    endings = [ending(i, IterationStatus.SUCCEEDED) for i in range(1, 2 * MAX_BATCH + 2)]
    failed = finish_many(gone, endings, on_error=lambda child, exc: heard.append((child, exc)))
    assert failed == set(range(1, 2 * MAX_BATCH + 2))
    assert len(heard) == 1 and heard[0][0] == 1 and isinstance(heard[0][1], TransportError)
