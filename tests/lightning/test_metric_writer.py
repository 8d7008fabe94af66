"""MetricWriter: everything handed in is written, in batches, and a slow store makes the producer wait
(bounded memory) instead of losing points."""

from __future__ import annotations

import threading

from diary_integrations import LocalTracker
from diary_integrations.writer import MetricWriter


def make_run(tmp_path):
    tracker = LocalTracker(tmp_path / "w.db")
    project_id, _ = tracker.create_project("P")
    experiment_id, _ = tracker.create_experiment(project_id, 1, "E")
    return tracker, tracker.create_iteration(experiment_id).id


class GatedTracker:
    """A real tracker whose bulk writes wait until the test opens the gate: storage that fell behind."""

    def __init__(self, tracker: LocalTracker) -> None:
        self.tracker = tracker
        self.gate = threading.Event()
        self.calls = 0

    def log_metric_points(self, iteration_id, points):
        self.calls += 1
        self.gate.wait()
        return self.tracker.log_metric_points(iteration_id, points)


def test_every_point_is_written_in_batches(tmp_path):
    tracker, run = make_run(tmp_path)
    writer = MetricWriter(tracker, batch_size=100)
    for step in range(1050):
        writer.add(run, "loss", 1.0 / (step + 1), step, 1e9)
    writer.extend([(run, "acc", 0.5, 0, 1e9), (run, "acc", 0.6, 1, 1e9)])
    assert writer.flush(timeout=60)
    assert writer.written == 1052 and writer.dropped == 0
    assert [m.step for m in tracker.get_metrics(run, key="loss")] == list(range(1050))
    writer.close()


def test_a_full_queue_blocks_the_producer_until_storage_catches_up(tmp_path):
    tracker, run = make_run(tmp_path)
    gated = GatedTracker(tracker)
    writer = MetricWriter(gated, batch_size=10, max_batches=2)
    produced = threading.Event()

    def produce():
        for step in range(100):  # 10 batches: far more than 2 queued + 1 being written
            writer.add(run, "loss", float(step), step, 1e9)
        produced.set()

    producer = threading.Thread(target=produce)
    producer.start()
    producer.join(timeout=2)
    assert not produced.is_set()  # held back while the store is stuck; nothing was dropped
    gated.gate.set()
    producer.join(timeout=60)
    assert produced.is_set()
    assert writer.flush(timeout=60)
    assert writer.dropped == 0 and len(tracker.get_metrics(run)) == 100


def test_a_refused_batch_is_reported_not_retried(tmp_path):
    tracker, run = make_run(tmp_path)
    tracker.end_iteration(run)
    writer = MetricWriter(tracker, batch_size=5)
    for step in range(5):
        writer.add(run, "loss", 0.1, step, 1e9)
    assert writer.flush(timeout=60)
    assert writer.dropped == 5 and "has ended" in writer.errors[0]


def _writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "diary-metric-writer" and t.is_alive()]


def test_an_idle_writer_ends_its_thread_and_the_next_point_starts_another(tmp_path):
    import time

    tracker, run = make_run(tmp_path)
    writer = MetricWriter(tracker, interval=0.05)
    before = set(_writer_threads())
    writer.add(run, "loss", 1.0, 0, 1e9)
    deadline = time.monotonic() + 30
    while set(_writer_threads()) - before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not set(_writer_threads()) - before  # nothing left to do: the thread is gone
    assert writer.written == 1  # written, not waiting for a thread that is no more
    for step in range(1, 200):  # points racing the thread's end always find a thread
        writer.add(run, "loss", 1.0, step, 1e9)
        if step % 50 == 0:
            time.sleep(0.06)
    assert writer.flush(timeout=60) and writer.written == 200
    assert [m.step for m in tracker.get_metrics(run, key="loss")] == list(range(200))


def test_stop_writes_what_is_left_and_ends_the_thread(tmp_path):
    from diary_integrations.tracker.lifecycle import Heartbeat

    tracker, run = make_run(tmp_path)
    writer = MetricWriter(tracker, interval=30.0)  # would hold the points for 30 s
    writer.add(run, "loss", 1.0, 0, 1e9)
    thread = writer._thread
    thread.stop()  # what Lightning's thread police calls on a daemon thread left behind
    assert not thread.is_alive() and writer.written == 1
    beat = Heartbeat.of(tracker, interval=30.0)
    beat.add(run)
    beating = beat.thread
    beating.stop()
    assert not beating.is_alive()
    beat.add(run)  # a later add beats again
    assert beat.thread is not beating and beat.thread.is_alive()
    beat.discard(run)
    beat.join_idle()
