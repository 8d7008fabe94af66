"""Contract: tags at three levels, and resources (artifact bytes with size and sha256)."""

from __future__ import annotations

import hashlib

import pytest

from diary_integrations import Conflict, TagTarget, Unprocessable


def test_tags_on_three_levels(tracker, experiment_id):
    project_id = tracker.get_experiment(experiment_id).project_id
    iteration_id, _ = tracker.create_iteration(experiment_id)
    tracker.add_tag(TagTarget.PROJECT, project_id, "fraud")
    tracker.add_tag("experiment", experiment_id, "baseline")
    tracker.add_tag(TagTarget.ITERATION, iteration_id, "baseline")
    assert [t.value for t in tracker.get_tags(TagTarget.PROJECT, project_id)] == ["fraud"]
    assert [t.value for t in tracker.get_tags(TagTarget.ITERATION, iteration_id)] == ["baseline"]
    assert [t.value for t in tracker.get_tags()] == ["fraud", "baseline"]  # one shared vocabulary
    with pytest.raises(Conflict):
        tracker.add_tag(TagTarget.ITERATION, iteration_id, "baseline")
    with pytest.raises(Unprocessable, match="target_id"):
        tracker.add_tag(TagTarget.ITERATION, 999_999, "x")
    with pytest.raises(Unprocessable, match="target"):
        tracker.add_tag("model", iteration_id, "x")
    assert tracker.remove_tag(TagTarget.ITERATION, iteration_id, "baseline")
    assert tracker.get_tags(TagTarget.ITERATION, iteration_id) == []
    assert [t.value for t in tracker.get_tags(TagTarget.EXPERIMENT, experiment_id)] == ["baseline"]


def test_tag_vocabulary_crud(tracker, experiment_id):
    tag_id, _ = tracker.create_tag("gpu")
    with pytest.raises(Conflict):
        tracker.create_tag("gpu")
    assert tracker.get_tag("gpu").id == tag_id and tracker.get_tag(tag_id).value == "gpu"
    tracker.update_tag(tag_id, "cpu")
    assert tracker.get_tag(tag_id).value == "cpu"
    tracker.add_tag(TagTarget.EXPERIMENT, experiment_id, "cpu")
    assert tracker.delete_tag(tag_id)  # detaches it everywhere
    assert tracker.get_tags(TagTarget.EXPERIMENT, experiment_id) == []
    assert tracker.get_tag("cpu") is None


def test_inline_resource(tracker, experiment_id, tmp_path):
    resource_id, _ = tracker.create_resource(experiment_id, "weights.bin", b"12345", description="ckpt")
    meta = tracker.get_resource(resource_id)
    assert meta.size_bytes == 5 and meta.content_hash == hashlib.sha256(b"12345").hexdigest()
    assert meta.name == "weights.bin" and meta.description == "ckpt"
    assert tracker.get_resource_data(resource_id) == b"12345"
    path = tmp_path / "model.ckpt"
    path.write_bytes(b"\x00\x01" * 1000)
    file_id, _ = tracker.create_resource(experiment_id, "model.ckpt", path)
    assert tracker.get_resource_data(file_id) == path.read_bytes()
    assert [r.id for r in tracker.get_resources(experiment_id)] == [resource_id, file_id]
    assert [r.id for r in tracker.get_resources(experiment_id, limit=1, offset=1)] == [file_id]
    tracker.update_resource(resource_id, name="w2.bin", data=b"abc")
    meta = tracker.get_resource(resource_id)
    assert (meta.name, meta.size_bytes, meta.updated_date is not None) == ("w2.bin", 3, True)
    assert tracker.delete_resource(resource_id)
    assert tracker.get_resource(resource_id) is None and tracker.get_resource_data(resource_id) is None
    with pytest.raises(Unprocessable, match="experiment_id"):
        tracker.create_resource(999_999, "x", b"x")
    with pytest.raises(Unprocessable, match="data"):
        tracker.create_resource(experiment_id, "x", 12345)
