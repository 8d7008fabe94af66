"""Issue 25: a full disk under the local journal. The server is away and the spool is a 64 KiB tmpfs this
test mounts: the run's end is still kept (in the room reserved for ends, else in place of its journaled
points), with_iteration does not raise after its body succeeded, no record is torn, no temporary or
claimed file is left, and the dropped points are said once, with the directory. Replayed to the server
afterwards: SUCCEEDED, every journaled point stored once."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from diary_integrations import ExperimentStatus, IterationStatus
from diary_integrations.client import RemoteTracker, journal
from diary_integrations.writer import MetricWriter

from .journal_server import free_port, kill, start_server

DIARY = [sys.executable, "-m", "diary_integrations.cli"]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")


@pytest.fixture
def small_spool(tmp_path, monkeypatch):
    """DIARY_SPOOL_DIR on a 64 KiB tmpfs, unmounted afterwards."""
    spool = tmp_path / "small-spool"
    spool.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(spool)], check=True)
    monkeypatch.setenv("DIARY_SPOOL_DIR", str(spool))
    yield spool
    subprocess.run(["umount", "-l", str(spool)], check=False)


def records(path: Path) -> list[dict]:
    """Every line of a journal file, each of which must be a whole record."""
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def leftovers(spool: Path) -> list[str]:
    return sorted(p.name for p in spool.rglob("*") if p.name.endswith(".tmp") or journal._CLAIM in p.name)


@needs_root
def test_a_full_disk_keeps_the_end_and_says_what_it_dropped(tmp_path, small_spool, caplog):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    db = f"sqlite:///{tmp_path / 'server.db'}"
    server = start_server(tmp_path, db, port)
    try:
        tracker = RemoteTracker(url, retries=0, replay_journal=False)
        project_id, _ = tracker.create_project("P")
        experiment_id, _ = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "E")
        writer = MetricWriter(tracker, batch_size=100, retries=0)
        caplog.set_level(logging.WARNING, logger="diary_integrations")
        kept = pytest.warns(RuntimeWarning, match="kept in the local journal")
        with kept, tracker.with_iteration(experiment_id) as iteration:  # must not raise: the body succeeds
            kill(server)
            for step in range(6000):  # ~60 batches of ~8 KiB each against a 64 KiB disk
                writer.add(iteration.id, "loss", 1.0 / (step + 1), step, 0.0)
            writer.close(timeout=1)  # the server is away: what is not delivered by then stays journaled
        path = journal.journal_path(url, iteration.id)
        kinds = [r["kind"] for r in records(path)]  # every line parses: nothing torn
        assert kinds[-1] == "end" and set(kinds[:-1]) == {"points"}
        journaled = sum(r["count"] for r in records(path) if r["kind"] == "points")
        assert 0 < journaled < 6000 and writer.dropped == 6000 - journaled
        full = [m for m in writer.errors if "were dropped, not journaled" in m]
        assert len(full) == 1 and f"{6000 - journaled} metric points" in full[0]
        warned = [r.getMessage() for r in caplog.records if "dropped, not journaled" in r.getMessage()]
        assert len(warned) == 1 and "No space left on device" in warned[0]
        assert leftovers(small_spool) == []
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

        server = start_server(tmp_path, db, port)
        report = journal.replay_file(tracker, path)
        assert report.left == 0 and report.rejected == 0, report.errors
        assert tracker.get_iteration(iteration.id).status is IterationStatus.SUCCEEDED
        steps = [m.step for m in tracker.get_metrics(iteration.id)]
        assert len(steps) == len(set(steps)) == journaled  # every journaled point once, none twice
        assert leftovers(small_spool) == [] and not path.exists()
    finally:
        server.stop()


@needs_root
def test_with_no_room_left_at_all_the_end_takes_the_place_of_the_runs_points(tmp_path, small_spool, caplog):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: every write is journaled
    tracker = RemoteTracker(url, retries=0, replay_journal=False)
    points = journal.Entry(tracker.metric_points_write(7, [("loss", 0.5, s) for s in range(300)]), "points", 300)
    path = journal.append(url, 7, [points])
    reserve = path.parent / journal.RESERVE
    assert reserve.stat().st_size == journal.RESERVE_BYTES  # made at the first append
    reserve.unlink()  # gone (released for another run's end), and no room to make it again:
    filler = small_spool / "filler"
    with pytest.raises(OSError), filler.open("wb") as f:  # the rest of the disk taken by something else
        while True:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    with pytest.raises(journal.JournalFull, match=str(small_spool)):  # points are refused whole ...
        journal.append(url, 7, [points])
    assert [r["kind"] for r in records(path)] == ["points"]  # ... and nothing torn was left
    from diary_integrations.client import PendingWrite

    # An end with a long traceback: more than the slack left in the journal file's last page.
    body = {"status_id": IterationStatus.FAILED.value, "error_message": "boom", "traceback": "x" * 6000}
    end = journal.Entry(PendingWrite("POST", "/iteration/7/end", None, body, "end-7"), "end")
    caplog.set_level(logging.WARNING, logger="diary_integrations")
    journal.append(url, 7, [end])  # the end is kept, in place of the run's journaled points
    assert [r["kind"] for r in records(path)] == ["end"]
    assert any("300 journaled metric points" in r.getMessage() for r in caplog.records)
    assert leftovers(small_spool) == []


def test_a_dry_run_names_the_unreadable_lines_it_would_keep_aside(tmp_path, monkeypatch):
    monkeypatch.setenv("DIARY_SPOOL_DIR", str(tmp_path / "spool"))
    url = f"http://127.0.0.1:{free_port()}"
    tracker = RemoteTracker(url, retries=0, replay_journal=False)
    points = journal.Entry(tracker.metric_points_write(3, [("loss", 0.5, s) for s in range(10)]), "points", 10)
    path = journal.append(url, 3, [points])
    with path.open("ab") as f:
        f.write(b'{"url": "torn mid-wri\n')  # what a crash mid-append left before records were cut back
    done = subprocess.run(
        [*DIARY, "sync", "--dry-run"], capture_output=True, text=True, timeout=60,
        env={**os.environ, "DIARY_SPOOL_DIR": str(tmp_path / "spool")},
    )
    assert done.returncode == 0, done.stderr
    assert "1 write (10 points, 1 unreadable line, to be kept aside in iteration-3.jsonl.rejected)" in done.stdout
