"""journal.py and MetricWriter's journal against a real tracking server: order, rejected records kept
aside, concurrent replayers, the `written`/`journaled` counters and the flush timeout."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from diary_integrations import ExperimentStatus, IterationStatus
from diary_integrations.client import PendingWrite, RemoteTracker, journal
from diary_integrations.resolve import experiment_for
from diary_integrations.writer import PROBE_INTERVAL, MetricWriter

from .journal_server import free_port, kill, start_server


def dead_url() -> str:
    """A loopback URL nothing listens on: every connection is refused at once."""
    return f"http://127.0.0.1:{free_port()}"


def new_iteration(tracker: RemoteTracker) -> int:
    return tracker.create_iteration(experiment_for(tracker, "P", "E")).id


def points_write(tracker: RemoteTracker, iteration_id: int, steps: range) -> journal.Entry:
    write = tracker.metric_points_write(iteration_id, [("loss", float(s), s) for s in steps])
    return journal.Entry(write, "points", len(steps))


def end_write(iteration_id: int, status: IterationStatus = IterationStatus.SUCCEEDED) -> journal.Entry:
    body = {"status_id": status.value, "error_message": "", "traceback": ""}
    return journal.Entry(PendingWrite("POST", f"/iteration/{iteration_id}/end", None, body, f"end-{iteration_id}-key"),
                         "end")


def steps_of(tracker: RemoteTracker, iteration_id: int) -> list[int]:
    return sorted(m.step for m in tracker.get_metrics(iteration_id))


def test_replay_sends_in_file_order_once_and_removes_the_journal(server_url):
    tracker = RemoteTracker(server_url, replay_journal=False)
    iteration_id = new_iteration(tracker)
    first, second = points_write(tracker, iteration_id, range(0, 5)), points_write(tracker, iteration_id, range(5, 8))
    path = journal.append(server_url, iteration_id, [first, second])
    journal.append(server_url, iteration_id, [end_write(iteration_id)])
    assert journal.has_pending(server_url, iteration_id)
    # The first batch had reached the server before (its answer was lost): replaying it is harmless.
    tracker.replay(first.write)
    report = journal.replay_file(tracker, path)
    assert (report.sent, report.rejected, report.left, report.points_sent) == (3, 0, 0, 8)
    assert steps_of(tracker, iteration_id) == list(range(8))  # once each, the end after the points
    assert tracker.get_iteration(iteration_id).status is IterationStatus.SUCCEEDED
    assert not journal.has_pending(server_url, iteration_id) and not path.exists()


def test_a_record_refused_for_good_is_kept_aside_and_the_rest_is_sent(server_url):
    tracker = RemoteTracker(server_url, replay_journal=False)
    iteration_id = new_iteration(tracker)
    tracker.end_iteration(iteration_id, IterationStatus.FAILED)  # ended: later points are refused (422)
    other = tracker.create_iteration(tracker.get_iteration(iteration_id).experiment_id).id
    path = journal.append(server_url, iteration_id, [points_write(tracker, iteration_id, range(3))])
    other_path = journal.append(server_url, other, [points_write(tracker, other, range(2))])
    report = journal.replay_server(tracker, quiet=True)
    assert (report.sent, report.rejected, report.left) == (1, 1, 0)
    assert not path.exists() and not other_path.exists()
    [kept] = journal.rejected_files(server_url)
    assert kept.name == f"iteration-{iteration_id}.jsonl.rejected"
    [record] = journal.read_records(kept)
    assert record["kind"] == "points" and record["rejected"].startswith("Unprocessable: ")
    assert steps_of(tracker, iteration_id) == [] and steps_of(tracker, other) == [0, 1]


def test_an_unreachable_server_leaves_the_journal_whole_and_in_order(tmp_path):
    url = dead_url()
    tracker = RemoteTracker(url, replay_journal=False)
    entries = [journal.Entry(PendingWrite("POST", "/metric/iteration/7/batch", None,
                                          {"points": [["loss", float(n), n]]}, f"key-{n:04d}-abcdef"), "points")
               for n in range(3)]
    path = journal.append(url, 7, entries)
    before = path.read_bytes()
    report = journal.replay_file(tracker, path, retries=0)
    assert (report.sent, report.left) == (0, 3) and report.errors
    assert path.read_bytes() == before
    # Appended while a replayer held the file: the claimed records go back in front of the new ones.
    claimed = journal._claim(path)
    journal.append(url, 7, [journal.Entry(PendingWrite("POST", "/iteration/7/end", None, {"status_id": 2},
                                                       "key-end-abcdef"), "end")])
    journal._put_back(claimed, None)
    assert [r["key"] for r in journal.read_records(path)] == ["key-0000-abcdef", "key-0001-abcdef",
                                                              "key-0002-abcdef", "key-end-abcdef"]


def test_concurrent_replayers_send_each_record_once(server_url):
    tracker = RemoteTracker(server_url, replay_journal=False)
    iteration_ids = [new_iteration(tracker) for _ in range(4)]
    for iteration_id in iteration_ids:
        for n in range(5):
            journal.append(server_url, iteration_id, [points_write(tracker, iteration_id, range(n * 10, n * 10 + 10))])
    reports: list[journal.ReplayReport] = []
    barrier = threading.Barrier(4)

    def replay() -> None:
        mine = RemoteTracker(server_url, replay_journal=False)
        barrier.wait()
        reports.append(journal.replay_server(mine))

    threads = [threading.Thread(target=replay) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.sent for r in reports) == 20  # every record sent by exactly one replayer
    for iteration_id in iteration_ids:
        assert steps_of(tracker, iteration_id) == list(range(50))
    assert journal.journal_files(server_url) == []


def test_a_journal_never_holds_credentials(tmp_path):
    url = "http://ada:hunter2-secret@127.0.0.1:9/x"
    entry = journal.Entry(PendingWrite("POST", "/metric/iteration/3/batch", None, {"points": []}, "k" * 12), "points")
    path = journal.append(url, 3, [entry])
    text = path.read_text()
    assert "hunter2" not in text and "ada" not in text and '"url":"http://127.0.0.1:9/x"' in text
    with pytest.raises(ValueError, match="secret"):
        journal.append(url, 3, [journal.Entry(PendingWrite("POST", "/auth", None, {"password": "p"}, "k" * 12), "x")])


def test_writer_journals_what_a_dead_server_cannot_take_and_flush_is_bounded(monkeypatch):
    monkeypatch.setenv("DIARY_FLUSH_TIMEOUT", "2")
    tracker = RemoteTracker(dead_url(), retries=1, replay_journal=False)
    writer = MetricWriter(tracker, batch_size=100, interval=0.05)
    started = time.monotonic()
    for step in range(1000):
        writer.add(5, "loss", 1.0, step, time.time())
    assert writer.flush() is True
    assert time.monotonic() - started < 5  # outage mode: batches go to the journal, no back-off per batch
    assert (writer.written, writer.journaled, writer.dropped) == (0, 1000, 0)
    [path] = writer.journals
    assert sum(r["count"] for r in journal.read_records(path)) == 1000


def test_writer_delivers_its_journal_when_the_server_answers_again(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    db = f"sqlite:///{tmp_path / 'server.db'}"
    server = start_server(tmp_path, db, port)
    try:
        tracker = RemoteTracker(url, retries=1, replay_journal=False)
        iteration_id = new_iteration(tracker)
        writer = MetricWriter(tracker, batch_size=50, interval=0.05)
        for step in range(100):
            writer.add(iteration_id, "loss", 1.0, step, time.time())
        writer.flush()
        assert writer.written == 100
        kill(server)
        for step in range(100, 300):
            writer.add(iteration_id, "loss", 1.0, step, time.time())
        writer.flush()
        assert writer.journaled == 200 and writer.written == 100
        server = start_server(tmp_path, db, port)
        time.sleep(PROBE_INTERVAL)
        for step in range(300, 400):  # the next batch probes: the journal is replayed first, then it goes
            writer.add(iteration_id, "loss", 1.0, step, time.time())
        writer.flush()
        assert writer.journaled == 0 and writer.dropped == 0
        assert steps_of(tracker, iteration_id) == list(range(400))  # each point once
        assert writer.written == 400
        assert not journal.has_pending(url, iteration_id)
    finally:
        server.stop()


def test_flush_timeout_journals_a_batch_stuck_in_flight(tmp_path, monkeypatch):
    monkeypatch.setenv("DIARY_FLUSH_TIMEOUT", "1")
    # A server that accepts connections and never answers: the batch hangs in flight.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        tracker = RemoteTracker(url, timeout=30, replay_journal=False)
        writer = MetricWriter(tracker, batch_size=10, interval=0.05)
        for step in range(35):
            writer.add(9, "loss", 1.0, step, time.time())
        started = time.monotonic()
        assert writer.close() is True
        assert time.monotonic() - started < 4
        assert (writer.written, writer.journaled, writer.dropped) == (0, 35, 0)
        [path] = writer.journals
        assert sorted(p[2] for r in journal.read_records(path) for p in r["body"]["points"]) == list(range(35))
    finally:
        listener.close()


def test_with_iteration_journals_its_end_and_the_next_connection_replays_it(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    db = f"sqlite:///{tmp_path / 'server.db'}"
    server = start_server(tmp_path, db, port)
    try:
        tracker = RemoteTracker(url, retries=1, replay_journal=False)
        project_id, _ = tracker.create_project("P")
        experiment_id, _ = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "E")
        kept = pytest.warns(RuntimeWarning, match=r"record SUCCEEDED for iteration \d+; it is kept in the local")
        with kept, tracker.with_iteration(experiment_id) as iteration:
            tracker.log_parameters(iteration.id, {"lr": 0.1})
            kill(server)
            with pytest.raises(Exception) as caught:  # the caller learns; the write is not lost
                tracker.log_parameters(iteration.id, {"depth": 3})
            assert type(caught.value).__name__ == "TransportError" and caught.value.journal.exists()
        path = journal.journal_path(url, iteration.id)
        assert [r["kind"] for r in journal.read_records(path)] == ["parameters", "end"]
        server = start_server(tmp_path, db, port)
        fresh = RemoteTracker(url)  # replays this server's journals in the background on first use
        assert fresh.get_iteration(iteration.id) is not None
        deadline = time.monotonic() + 20
        while journal.has_pending(url, iteration.id) and time.monotonic() < deadline:  # the file, or its claim
            time.sleep(0.1)
        assert not journal.has_pending(url, iteration.id)
        assert fresh.get_iteration(iteration.id).status is IterationStatus.SUCCEEDED
        assert {p.key: p.value for p in fresh.get_parameters(iteration.id)} == {"lr": "0.1", "depth": "3"}
    finally:
        server.stop()


def test_writes_appended_behind_a_claim_wait_for_it(server_url):
    tracker = RemoteTracker(server_url, replay_journal=False)
    iteration_id = new_iteration(tracker)
    path = journal.append(server_url, iteration_id, [points_write(tracker, iteration_id, range(3))])
    older = journal._claim(path)  # another replayer is sending the points
    journal.append(server_url, iteration_id, [end_write(iteration_id)])  # the run's end arrives behind them
    report = journal.replay_file(tracker, path)
    assert (report.sent, report.left) == (0, 1)  # the end is not sent before the points
    # Said truthfully: the claim is this process's own (not "another process", as it once said).
    assert "being replayed by another thread of this process" in report.errors[0], report.errors
    assert tracker.get_iteration(iteration_id).status is IterationStatus.RUNNING
    journal._put_back(older, None)  # that replayer gives up: the points go back in front of the end
    assert [r["kind"] for r in journal.read_records(path)] == ["points", "end"]
    assert journal.replay_file(tracker, path).sent == 2
    assert steps_of(tracker, iteration_id) == [0, 1, 2]
    assert tracker.get_iteration(iteration_id).status is IterationStatus.SUCCEEDED


def test_a_claim_of_another_live_process_is_named_by_its_pid(server_url):
    import os

    tracker = RemoteTracker(server_url, replay_journal=False)
    iteration_id = new_iteration(tracker)
    path = journal.append(server_url, iteration_id, [points_write(tracker, iteration_id, range(3))])
    mine = journal._claim(path)
    other = mine.with_name(f"{path.name}.replaying-{os.getppid()}-0badcafe")  # a live process's claim
    mine.rename(other)
    journal.append(server_url, iteration_id, [end_write(iteration_id)])
    report = journal.replay_file(tracker, path)
    assert report.left == 1 and f"being replayed by process {os.getppid()};" in report.errors[0], report.errors
    journal._put_back(other, None)
    assert journal.replay_file(tracker, path).sent == 2
    assert tracker.get_iteration(iteration_id).status is IterationStatus.SUCCEEDED


def test_a_replayed_write_returns_what_its_method_returns(server_url):
    # Writes that failed against a server that was away (their `.request`, or a journaled record) are sent
    # again with `replay`: the answer has the shape the method would have returned, not the wire's JSON.
    from diary_integrations import Created, Result, TransportError
    from diary_integrations.tracker.records import NewIteration

    tracker = RemoteTracker(server_url, replay_journal=False)
    away = RemoteTracker(dead_url(), retries=0, replay_journal=False)
    experiment_id = experiment_for(tracker, "P", "E")
    iteration_id = new_iteration(tracker)

    def failed(call) -> PendingWrite:
        with pytest.raises(TransportError) as caught:
            call()
        return caught.value.request

    batch = failed(lambda: away.create_iterations(experiment_id, [NewIteration(notes="a"), NewIteration(notes="b")]))
    one = failed(lambda: away.create_iteration(experiment_id, snapshot=False))
    parameters = failed(lambda: away.log_parameters(iteration_id, {"lr": 0.1, "depth": 3}))
    points = failed(lambda: away.log_metric_points(iteration_id, [("loss", 1.0, 0), ("loss", 0.5, 1)]))
    ended = failed(lambda: away.end_iteration(iteration_id))
    for _ in range(2):  # a repeat (same key) answers the same, applied once
        ids = tracker.replay(batch)
        assert isinstance(ids, list) and len(ids) == 2 and all(type(i) is int for i in ids)
        assert [tracker.get_iteration(i).notes for i in ids] == ["a", "b"]
        created = tracker.replay(one)
        assert isinstance(created, Created) and created.result is Result.CREATED
        assert tracker.replay(parameters) == 2
        assert tracker.replay(points) == 2
        assert tracker.replay(ended) is Result.UPDATED
    assert len(tracker.get_iterations(experiment_id)) == 4
    assert steps_of(tracker, iteration_id) == [0, 1]
    away.close()
    tracker.close()
