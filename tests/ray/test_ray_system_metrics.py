"""System metrics of Ray Tune trials (issue 29): each trial's child records the process its trainable
runs in (a Ray actor, sampled by pid from the driver), stopped before the child's end; off with
`DiaryCallback(system_metrics=False)`."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import system_scenario
from ray import tune

from diary_integrations import IterationStatus, LocalTracker, Unprocessable
from diary_integrations.ray import DiaryCallback
from diary_integrations.system_metrics.sampler import THREAD_NAME

pytestmark = [pytest.mark.slow, pytest.mark.system_metrics, pytest.mark.xdist_group("ray")]


def _fit(tmp_path: Path, name: str, **options: object) -> LocalTracker:
    db = tmp_path / f"{name}.db"
    callback = DiaryCallback("P", "Tune", uri=str(db), sidecar=False, **options)
    tune.Tuner(
        system_scenario.ballast_trainable,
        param_space={"x": tune.grid_search([0, 1])},
        tune_config=tune.TuneConfig(metric="loss", mode="min"),
        run_config=tune.RunConfig(name=name, storage_path=str(tmp_path / "ray"), verbose=0, callbacks=[callback]),
    ).fit()
    return LocalTracker(db)


def _trials(tracker: LocalTracker) -> dict[int, object]:
    (driver,) = [it for it in tracker.get_iterations(1) if it.parent_iteration_id is None]
    children = tracker.get_child_iterations(driver.id)
    params = tracker.get_parameter_values([c.id for c in children])
    return {int(params[c.id]["x"]): c for c in children}


def test_each_trial_records_its_own_process(ray_cluster: str, tmp_path: Path) -> None:
    tracker = _fit(tmp_path, "sys", system_metrics_interval=0.5)
    by_x = _trials(tracker)
    assert sorted(by_x) == [0, 1]
    peaks = {}
    for x, child in by_x.items():
        assert child.status is IterationStatus.SUCCEEDED
        rss = tracker.get_metrics(child.id, key="system/proc.rss_mib")
        assert len(rss) >= 3, f"trial x={x}: {len(rss)} readings of its process"
        # The last reading is stored before the child's end (steps are wall-clock milliseconds).
        assert max(p.step for p in rss) <= child.end_date.timestamp() * 1000 + 1
        latest = tracker.get_latest_metrics([child.id])[child.id]
        assert latest["system/proc.processes"] >= 1 and "system/cpu_percent" in latest
        peaks[x] = latest["system/proc.rss_mib.max"]
    # Each child sampled its own trial's actor, not the driver: only x=1's process held the ballast.
    assert peaks[1] - peaks[0] >= 0.8 * system_scenario.BALLAST_MIB, peaks
    assert not [t for t in threading.enumerate() if t.name == THREAD_NAME]  # every sampler stopped
    tracker.close()


def test_system_metrics_false_records_none(ray_cluster: str, tmp_path: Path) -> None:
    tracker = _fit(tmp_path, "nosys", system_metrics=False)
    for child in _trials(tracker).values():
        assert child.status is IterationStatus.SUCCEEDED
        assert not [p for p in tracker.get_metrics(child.id) if p.key.startswith("system/")]
        assert tracker.get_metrics(child.id, key="loss")
    tracker.close()


@pytest.mark.parametrize(("options", "field"), [
    ({"system_metrics": "yes"}, "system_metrics"),
    ({"system_metrics_interval": 0}, "system_metrics_interval"),
])
def test_bad_options_are_refused_when_the_callback_is_made(options: dict, field: str, tmp_path: Path) -> None:
    with pytest.raises(Unprocessable) as refused:
        DiaryCallback("P", "Tune", uri=str(tmp_path / "x.db"), **options)
    assert refused.value.field == field
    assert not (tmp_path / "x.db").exists()
