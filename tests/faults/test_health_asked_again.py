"""A client whose first `/health` call found no server (it was still starting, or away) asks again later, so
one failed call does not cost a long run its gzip bodies and coalesced batches; and it does not ask on
every request while the server stays away."""

from __future__ import annotations

import time

import pytest

from diary_integrations.client import RemoteTracker, transport
from diary_integrations.resolve import experiment_for

from .journal_server import free_port, kill, start_server


def _requests(tracker: RemoteTracker) -> list[tuple[str, str | None]]:
    """(path, Content-Encoding) of every request the tracker's client makes from now on."""
    seen: list[tuple[str, str | None]] = []
    tracker._http().event_hooks["request"].append(
        lambda r: seen.append((r.url.path, r.headers.get("content-encoding"))))
    return seen


def test_a_server_that_comes_up_late_still_gets_gzip(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    tracker = RemoteTracker(f"http://127.0.0.1:{port}", retries=0, replay_journal=False)
    seen = _requests(tracker)
    tracker.body_budget()
    tracker.body_budget()  # within HEALTH_RETRY_SECONDS of the failure: not asked again
    assert [path for path, _ in seen] == ["/health"]
    assert not tracker._server_gzip

    monkeypatch.setattr(transport, "HEALTH_RETRY_SECONDS", 0.2)
    server = start_server(tmp_path, f"sqlite:///{tmp_path / 'late.db'}", port)
    try:
        time.sleep(0.3)
        iteration_id = tracker.create_iteration(experiment_for(tracker, "P", "E")).id
        points = [("loss", 1.0 / (step + 1), step) for step in range(20_000)]  # ~0.5 MB of JSON
        assert tracker.log_metric_points(iteration_id, points) == len(points)
        batches = [encoding for path, encoding in seen if path.endswith("/batch")]
        assert batches == ["gzip"], seen
        assert tracker._server_groups  # and the multi-iteration batch route is known now
        assert [(m.step, m.value) for m in tracker.get_metrics(iteration_id, key="loss")] == [
            (s, v) for _, v, s in points]
    finally:
        tracker.close()
        kill(server)
