"""A MetricWriter serving several runs sends their points in one request (`POST /metric/batch`) against a
real server, and coalescing keeps the journal's promise: each run's journal stays its own ordered file,
and a share journaled after a failed coalesced send is written once when it is replayed alone."""

from __future__ import annotations

import time

from diary_integrations.client import RemoteTracker, journal
from diary_integrations.resolve import experiment_for
from diary_integrations.writer import PROBE_INTERVAL, MetricWriter

from .journal_server import free_port, kill, start_server

RUNS = 4


def _runs(tracker: RemoteTracker) -> list[int]:
    experiment_id = experiment_for(tracker, "P", "E")
    return [tracker.create_iteration(experiment_id).id for _ in range(RUNS)]


def _add(writer: MetricWriter, ids: list[int], steps: range) -> None:
    for step in steps:  # interleaved, as a writer serving several runs receives them
        for n, iteration_id in enumerate(ids):
            writer.add(iteration_id, "loss", n + step / 1000, step, time.time())


def _steps(tracker: RemoteTracker, iteration_id: int) -> list[int]:
    return sorted(m.step for m in tracker.get_metrics(iteration_id))


def _posts(tracker: RemoteTracker) -> list[str]:
    paths: list[str] = []
    tracker._http().event_hooks["request"].append(lambda r: paths.append(r.url.path) if r.method == "POST" else None)
    return paths


def test_a_writer_serving_several_runs_sends_them_in_one_request(tmp_path):
    port = free_port()
    server = start_server(tmp_path, f"sqlite:///{tmp_path / 'server.db'}", port)
    try:
        tracker = RemoteTracker(f"http://127.0.0.1:{port}", replay_journal=False)
        ids = _runs(tracker)
        posts = _posts(tracker)
        writer = MetricWriter(tracker, batch_size=RUNS * 50, interval=0.05)
        _add(writer, ids, range(200))
        assert writer.flush() is True
        assert (writer.written, writer.journaled, writer.dropped) == (RUNS * 200, 0, 0)
        assert posts == ["/metric/batch"] * 4  # 800 points in batches of 200, each one request for 4 runs
        assert all(_steps(tracker, i) == list(range(200)) for i in ids)
    finally:
        server.stop()


def test_coalesced_shares_journaled_in_an_outage_are_delivered_once_per_run(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    db = f"sqlite:///{tmp_path / 'server.db'}"
    server = start_server(tmp_path, db, port)
    try:
        tracker = RemoteTracker(url, retries=1, replay_journal=False)
        ids = _runs(tracker)
        writer = MetricWriter(tracker, batch_size=RUNS * 25, interval=0.05)
        _add(writer, ids, range(50))
        writer.flush()
        assert writer.written == RUNS * 50
        kill(server)
        _add(writer, ids, range(50, 150))
        writer.flush()
        assert writer.journaled == RUNS * 100 and writer.written == RUNS * 50
        assert len(writer.journals) == RUNS  # one ordered file per run, as without coalescing
        server = start_server(tmp_path, db, port)
        time.sleep(PROBE_INTERVAL)
        _add(writer, ids, range(150, 200))  # the next batch probes: the journals go first, then it
        writer.flush()
        assert (writer.journaled, writer.dropped, writer.written) == (0, 0, RUNS * 200)
        assert all(_steps(tracker, i) == list(range(200)) for i in ids)  # each point once
        assert not any(journal.has_pending(url, i) for i in ids)
    finally:
        server.stop()


def test_a_coalesced_send_whose_answer_was_lost_is_not_doubled_by_the_journal(tmp_path):
    """The server applied the coalesced request, but the writer never heard (it journaled every share):
    replaying each run's journal alone finds its key and writes nothing again."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(tmp_path, f"sqlite:///{tmp_path / 'server.db'}", port)
    try:
        tracker = RemoteTracker(url, replay_journal=False)
        ids = _runs(tracker)
        writes = [(i, tracker.metric_points_write(i, [("loss", float(s), s) for s in range(30)])) for i in ids]
        assert tracker.replay_metric_writes(writes) == [30] * RUNS
        paths = [journal.append(url, i, [journal.Entry(w, "points", 30)]) for i, w in writes]
        for path in paths:
            report = journal.replay_file(tracker, path)
            assert report.sent == 1 and not report.left and not report.errors
        assert all(_steps(tracker, i) == list(range(30)) for i in ids)
        assert not any(journal.has_pending(url, i) for i in ids)
    finally:
        server.stop()
