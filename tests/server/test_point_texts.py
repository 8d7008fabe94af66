"""Points whose keys and values are awkward for the PostgreSQL one-statement path (it passes them as array
literals): quotes, backslashes, commas, braces, spaces, the word NULL, non-ASCII text, NaN, infinities,
extreme doubles and steps. Through a real server on SQLite and PostgreSQL, each reads back as sent."""

from __future__ import annotations

import math
import sys

import pytest

from diary_integrations import ExperimentStatus

KEYS = ['a"b', "back\\slash", "c,d", "{e}", " spaced key ", "NULL", "null", "é/ü 漢字", "'single'", "tail\\"]
VALUES = [0.1, -0.0, 1e-310, sys.float_info.max, -sys.float_info.max, math.nan, math.inf, -math.inf, 1 / 3, 12345.678]


@pytest.mark.parametrize("kind", ["server-sqlite", "server-postgres"])
def test_awkward_keys_and_values_read_back_as_sent(kind, request, tmp_path):
    gen = request.getfixturevalue("tracker_factories")[kind](request, tmp_path)
    tracker = next(gen)
    try:
        project_id, _ = tracker.create_project("texts")
        experiment_id, _ = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "E")
        iteration_id, _ = tracker.create_iteration(experiment_id, snapshot=False)
        points = [(key, value, step) for key in KEYS for step, value in enumerate(VALUES)]
        points.append(("big step", 1.0, 2**63 - 1))
        points.append(("dated", 2.0, 0, 1_700_000_000.25))
        assert tracker.log_metric_points(iteration_id, points) == len(points)
        stored = {(m.key, m.step): m for m in tracker.get_metrics(iteration_id)}
        assert len(stored) == len(points)
        for key, value, step, *_when in points:
            got = stored[(key, step)].value
            assert (math.isnan(got) and math.isnan(value)) or got == value, (key, step, got, value)
        assert stored[("dated", 0)].recorded_at.timestamp() == 1_700_000_000.25
    finally:
        gen.close()
