"""gzip request bodies through a real server (SQLite and PostgreSQL): the client compresses large batches
and the server inflates them; a decompression bomb is a 413 that never costs the server more memory than
an honest request of the limit's size; data that is not gzip is a 422 naming the header, another
encoding a 415; nothing is written by a refused body."""

from __future__ import annotations

import zlib

import httpx
import orjson
import psutil
import pytest

from diary_integrations import ExperimentStatus

MIB = 1024 * 1024


@pytest.fixture(params=["server-sqlite", "server-postgres"])
def served(request, tmp_path):
    """(tracker, iteration id, the server's URL, the server's process id)."""
    factory = request.getfixturevalue("tracker_factories")[request.param]
    gen = factory(request, tmp_path)
    tracker = next(gen)
    project_id, _ = tracker.create_project("gzip")
    experiment_id, _ = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "E")
    iteration_id, _ = tracker.create_iteration(experiment_id, snapshot=False)
    live = request.getfixturevalue("live_server")
    yield tracker, iteration_id, live.url, live.process.pid
    gen.close()


def _gzip(data: bytes, level: int = 6) -> bytes:
    packer = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


def _sent_encodings(tracker) -> list[tuple[str, str | None, int]]:
    """(path, Content-Encoding, bytes sent) of every request the tracker's client makes from now on."""
    seen: list[tuple[str, str | None, int]] = []

    def hook(req: httpx.Request) -> None:
        seen.append((req.url.path, req.headers.get("content-encoding"), len(req.content)))

    tracker._http().event_hooks["request"].append(hook)
    return seen


def test_a_large_batch_goes_gzipped_and_reads_back_whole(served):
    tracker, iteration_id, _, _ = served
    seen = _sent_encodings(tracker)
    points = [("loss", 1.0 / (step + 1), step) for step in range(20_000)]  # ~0.5 MB of JSON
    assert tracker.log_metric_points(iteration_id, points) == len(points)
    batches = [s for s in seen if s[0].endswith("/batch")]
    assert len(batches) == 1 and batches[0][1] == "gzip"
    assert batches[0][2] < len(orjson.dumps({"points": points})) / 3  # it paid: a third of the bytes at most
    stored = tracker.get_metrics(iteration_id, key="loss")
    assert [(m.step, m.value) for m in stored] == [(s, v) for _, v, s in points]


def test_a_small_batch_goes_plain(served):
    tracker, iteration_id, _, _ = served
    seen = _sent_encodings(tracker)
    assert tracker.log_metric_points(iteration_id, [("loss", 0.5, 0), ("loss", 0.25, 1)]) == 2
    assert [s[1] for s in seen if s[0].endswith("/batch")] == [None]


def test_a_gzipped_body_from_any_client_is_taken(served):
    tracker, iteration_id, url, _ = served
    body = _gzip(orjson.dumps({"points": [["acc", 0.5, 0], ["acc", 0.75, 1]]}))
    answer = httpx.post(f"{url}/metric/iteration/{iteration_id}/batch", content=body, timeout=60,
                        headers={"content-type": "application/json", "content-encoding": "gzip"})
    assert answer.status_code == 201, answer.text
    assert answer.json() == {"count": 2}
    assert [m.value for m in tracker.get_metrics(iteration_id, key="acc")] == [0.5, 0.75]


def test_a_decompression_bomb_is_a_413_within_bounded_memory(served):
    tracker, iteration_id, url, pid = served
    # 512 MiB of a valid batch's worth of zeros inside a JSON string: ~0.5 MB on the wire, 16x the limit.
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [packer.compress(b'{"points": [["loss", 1.0, 0]], "pad": "')]
    zeros = b"0" * MIB
    parts += [packer.compress(zeros) for _ in range(512)]
    parts.append(packer.compress(b'"}') + packer.flush())
    bomb = b"".join(parts)
    assert len(bomb) < 4 * MIB
    server = psutil.Process(pid)
    before = server.memory_info().rss
    answer = httpx.post(f"{url}/metric/iteration/{iteration_id}/batch", content=bomb, timeout=120,
                        headers={"content-type": "application/json", "content-encoding": "gzip"})
    grown = server.memory_info().rss - before
    assert answer.status_code == 413, answer.text
    assert answer.json()["code"] == "PAYLOAD_TOO_LARGE" and answer.json()["field"] == "Content-Encoding"
    assert "DIARY_MAX_REQUEST_BYTES" in answer.json()["message"]
    # Inflated whole it would be 512 MiB; bounded, at most the 32 MiB limit (and its pieces) is held.
    assert grown < 160 * MIB, f"server grew by {grown / MIB:.0f} MiB"
    assert tracker.get_metrics(iteration_id) == []
    assert httpx.get(f"{url}/health", timeout=30).status_code == 200  # and it goes on serving


@pytest.mark.parametrize(
    ("body", "encoding", "status", "words"),
    [
        (orjson.dumps({"points": [["loss", 1.0, 0]]}), "gzip", 422, "not valid gzip"),  # plain JSON, said gzip
        (_gzip(orjson.dumps({"points": [["loss", 1.0, 0]]}))[:-6], "gzip", 422, "ends early"),
        (_gzip(orjson.dumps({"points": [["loss", 1.0, 0]]})) + b"junk", "gzip", 422, "after the end"),
        (orjson.dumps({"points": [["loss", 1.0, 0]]}), "br", 415, "not accepted"),
    ],
)
def test_a_body_that_is_not_what_its_encoding_says_is_refused_by_name(served, body, encoding, status, words):
    tracker, iteration_id, url, _ = served
    answer = httpx.post(f"{url}/metric/iteration/{iteration_id}/batch", content=body, timeout=60,
                        headers={"content-type": "application/json", "content-encoding": encoding})
    assert answer.status_code == status, answer.text
    payload = answer.json()
    assert payload["field"] == "Content-Encoding" and words in payload["message"]
    assert tracker.get_metrics(iteration_id) == []
