"""Several iterations' metric points in one request (`POST /metric/batch`) and one transaction, through a
real server on SQLite and PostgreSQL, and `log_metric_points_many` on every tracker kind: all or nothing,
and a group's idempotency key means the same write whichever route carries it (coalesced here, or
alone from a run's journal), so nothing is written twice."""

from __future__ import annotations

import httpx
import pytest

from diary_integrations import ExperimentStatus, IterationStatus
from diary_integrations.tracker.errors import Unprocessable
from diary_integrations.tracker.keys import new_key

SERVED = ["server-sqlite", "server-postgres"]


def _iterations(tracker, n: int) -> list[int]:
    project_id, _ = tracker.create_project("groups")
    experiment_id, _ = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "E")
    return [tracker.create_iteration(experiment_id, snapshot=False)[0] for _ in range(n)]


@pytest.fixture(params=SERVED)
def served(request, tmp_path):
    """(remote tracker, three iteration ids, the server's URL)."""
    gen = request.getfixturevalue("tracker_factories")[request.param](request, tmp_path)
    tracker = next(gen)
    yield tracker, _iterations(tracker, 3), request.getfixturevalue("live_server").url
    gen.close()


def _points(iteration_id: int, n: int = 50) -> list[tuple[str, float, int]]:
    return [("loss", iteration_id + step / 1000, step) for step in range(n)]


def _stored(tracker, iteration_id: int) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in tracker.get_metrics(iteration_id)]


@pytest.mark.parametrize("kind", ["sqlite", "postgres", "server-sqlite", "server-postgres", "sidecar-sqlite"])
def test_log_metric_points_many_writes_every_iteration(kind, request, tmp_path):
    gen = request.getfixturevalue("tracker_factories")[kind](request, tmp_path)
    tracker = next(gen)
    try:
        ids = _iterations(tracker, 3)
        assert tracker.log_metric_points_many({i: _points(i) for i in ids}) == 150
        for i in ids:
            assert _stored(tracker, i) == [(s, v) for _, v, s in _points(i)]
        assert tracker.log_metric_points_many({}) == 0
    finally:
        gen.close()


def test_several_iterations_go_in_one_request(served):
    tracker, ids, _ = served
    tracker.body_budget()  # the /health look first, so only the writes are counted below
    paths: list[str] = []
    tracker._http().event_hooks["request"].append(lambda r: paths.append(r.url.path))
    assert tracker.log_metric_points_many({i: _points(i) for i in ids}) == 150
    assert paths == ["/metric/batch"]


def test_one_ended_iteration_refuses_the_whole_batch(served):
    tracker, ids, _ = served
    tracker.end_iteration(ids[1], IterationStatus.SUCCEEDED)
    with pytest.raises(Unprocessable, match=f"iteration {ids[1]} has ended"):
        tracker.log_metric_points_many({i: _points(i) for i in ids})
    assert all(_stored(tracker, i) == [] for i in ids)


def test_a_bad_point_is_named_with_its_group_and_nothing_is_written(served):
    _, ids, url = served
    groups = [{"iteration_id": ids[0], "points": [["loss", 1.0, 0]]},
              {"iteration_id": ids[1], "points": [["loss", 1.0, 0], ["loss", True, 1]]}]
    answer = httpx.post(f"{url}/metric/batch", json={"iterations": groups}, timeout=60)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == "iterations[1].points[1].value"
    twice = httpx.post(f"{url}/metric/batch", timeout=60,
                       json={"iterations": [groups[0], {"iteration_id": ids[0], "points": []}]})
    assert twice.status_code == 422 and twice.json()["field"] == "iterations[1].iteration_id"
    unknown = httpx.post(f"{url}/metric/batch", json={"iterations": [{**groups[0], "run": 1}]}, timeout=60)
    assert unknown.status_code == 422 and unknown.json()["field"] == "iterations[0].run"
    missing = httpx.post(f"{url}/metric/batch", json={"iterations": [{"iteration_id": 10**9, "points": []}]},
                         timeout=60)
    assert missing.status_code == 422 and "does not exist" in missing.json()["message"]
    with httpx.Client(base_url=url) as api:
        assert all(api.get(f"/metric/iteration/{i}").json()["total"] == 0 for i in ids)


def test_a_group_key_is_one_write_whichever_route_carries_it(served):
    tracker, ids, url = served
    a, b, c = ids
    ka, kb, kc = new_key(), new_key(), new_key()
    body = {"iterations": [
        {"iteration_id": a, "points": [["loss", 1.0, 0]], "idempotency_key": ka},
        {"iteration_id": b, "points": [["loss", 2.0, 0], ["loss", 2.5, 1]], "idempotency_key": kb},
    ]}
    with httpx.Client(base_url=url, timeout=60) as api:
        first = api.post("/metric/batch", json=body)
        assert first.status_code == 201 and first.json() == {"count": 3, "counts": [1, 2], "replayed": [False, False]}
        # The coalesced batch sent again (a retry whose answer was lost): every group is a replay.
        again = api.post("/metric/batch", json=body)
        assert again.status_code == 201 and again.json()["replayed"] == [True, True]
        # Group b replayed alone from its run's journal, with its own key: its first answer, no second write.
        alone = api.post(f"/metric/iteration/{b}/batch", json={"points": [["loss", 2.0, 0], ["loss", 2.5, 1]]},
                         headers={"Idempotency-Key": kb})
        assert alone.status_code == 201 and alone.json() == {"count": 2}
        assert alone.headers.get("Idempotent-Replayed") == "true"
        # The other way round: sent alone first, then inside a batch beside a new group.
        assert api.post(f"/metric/iteration/{c}/batch", json={"points": [["loss", 3.0, 0]]},
                        headers={"Idempotency-Key": kc}).status_code == 201
        mixed = api.post("/metric/batch", json={"iterations": [
            {"iteration_id": c, "points": [["loss", 3.0, 0]], "idempotency_key": kc},
            {"iteration_id": a, "points": [["loss", 1.5, 1]], "idempotency_key": new_key()},
        ]})
        assert mixed.status_code == 201 and mixed.json() == {"count": 2, "counts": [1, 1], "replayed": [True, False]}
        # A group key already used for another iteration's batch is refused, and nothing of the batch written.
        reused = api.post("/metric/batch", json={"iterations": [
            {"iteration_id": c, "points": [["loss", 9.0, 5]], "idempotency_key": new_key()},
            {"iteration_id": a, "points": [["loss", 9.0, 5]], "idempotency_key": kb},
        ]})
        assert reused.status_code == 422 and reused.json()["field"] == "idempotency_key"
    assert _stored(tracker, a) == [(0, 1.0), (1, 1.5)]
    assert _stored(tracker, b) == [(0, 2.0), (1, 2.5)]
    assert _stored(tracker, c) == [(0, 3.0)]
