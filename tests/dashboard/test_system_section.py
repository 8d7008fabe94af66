"""The dashboard's System section and the sweep page's peak-memory column, over runs whose system metrics
the real sampler recorded (with_iteration(system_metrics=True)) or, for a GPU this machine lacks, points
written as the sampler names them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient

from diary_integrations import IterationStatus, LocalTracker
from diary_integrations.dashboard import create_dashboard
from diary_integrations.resolve import experiment_for

pytestmark = pytest.mark.system_metrics


@pytest.fixture
def tracker(tmp_path: Path):
    tracker = LocalTracker(tmp_path / "runs.db", artifact_root=None)
    yield tracker
    tracker.close()


def page(tracker, url: str) -> BeautifulSoup:
    with TestClient(create_dashboard(tracker)) as client:
        response = client.get(url)
    assert response.status_code == 200, response.text[:500]
    return BeautifulSoup(response.text, "html.parser")


def gpu_points() -> list[tuple[str, float, int]]:
    """A GPU as the sampler names NVML's readings where there is one (this machine has none)."""
    start = int(time.time() * 1000)
    return [(f"system/gpu.0.{k}", v, start + 100 * n) for n in range(3)
            for k, v in (("util", 50.0 + n), ("memory_used_mib", 900.0 + n), ("memory_total_mib", 16384.0),
                         ("memory_used_mib.max", 900.0 + n), ("temperature_c", 60.0), ("power_w", 100.0))]


def sampled_run(tracker, experiment: int, *, parent: int | None = None, error: BaseException | None = None,
                gpu: bool = False) -> int:
    """A run the sampler recorded for a few readings, with a training metric beside."""
    try:
        with tracker.with_iteration(experiment, parent_iteration_id=parent, system_metrics=True,
                                    system_metrics_interval=0.05) as it:
            tracker.log_metric_points(it.id, [("train_loss", 1.0 / (s + 1), s) for s in range(5)])
            time.sleep(0.3)
            if gpu:
                tracker.log_metric_points(it.id, gpu_points())
            if error is not None:
                raise error
    except type(error) if error is not None else ():  # noqa: B030 - the run failed on purpose
        pass
    return it.id


def system_charts(soup: BeautifulSoup) -> list[str]:
    section = soup.find("section", id="system")
    return [f["data-key"] for f in section.find_all("figure")] if section else []


def x_ticks(figure) -> list[str]:
    svg = figure.find("svg")
    bottom = max(float(t["y"]) for t in svg.find_all("text", class_="tick"))
    return [t.get_text() for t in svg.find_all("text", class_="tick") if float(t["y"]) == bottom]


def test_iteration_page_has_a_system_section_on_one_time_axis(tracker):
    run = sampled_run(tracker, experiment_for(tracker, "P", "E"), gpu=True)
    soup = page(tracker, f"/ui/iterations/{run}")
    charts = system_charts(soup)
    assert charts[:2] == ["cpu", "memory"] and {"gpu.0.memory", "gpu.0", "machine-memory", "network"} <= set(charts)
    figures = soup.find("section", id="system").find_all("figure")
    assert len({tuple(x_ticks(f)) for f in figures}) == 1  # every chart on the same time axis
    assert "seconds since the first reading" in figures[0].get_text()
    peaks = {tr["data-key"] for tr in soup.select("section#system table.peaks tr")}
    assert peaks == {"system/proc.rss_mib.max", "system/gpu.0.memory_used_mib.max"}
    # The system metrics are not charted again among the run's own metrics.
    metrics = [f["data-key"] for f in soup.select("div.charts figure.chart-box") if f.find_parent(id="system") is None]
    assert metrics == ["train_loss"]
    assert soup.find("section", id="system").find_previous("h2").get_text() == "Metrics"


def test_a_run_failed_by_memory_shows_its_memory_curve_first(tracker):
    experiment = experiment_for(tracker, "P", "E")
    oom = sampled_run(tracker, experiment, error=RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    other = sampled_run(tracker, experiment, error=ValueError("bad label 7"))
    assert tracker.get_iteration(oom).status is IterationStatus.FAILED
    soup = page(tracker, f"/ui/iterations/{oom}")
    assert system_charts(soup)[0] == "memory"
    headings = [h.get_text() for h in soup.select("section.card > h2")]
    assert headings.index("System") < headings.index("Parameters")  # before anything else
    soup = page(tracker, f"/ui/iterations/{other}")
    assert system_charts(soup)[0] == "cpu"
    headings = [h.get_text() for h in soup.select("section.card > h2")]
    assert headings.index("System") > headings.index("Metrics")


def test_sweep_page_shows_peak_memory_and_no_other_system_column(tracker):
    experiment = experiment_for(tracker, "P", "E")
    driver, _ = tracker.create_iteration(experiment)
    children = [sampled_run(tracker, experiment, parent=driver) for _ in range(2)]
    soup = page(tracker, f"/ui/iterations/{driver}/sweep")
    headers = [th.get_text() for th in soup.select("table.sweep thead th")]
    assert any("system/proc.rss_mib.max" in h.replace("\u200b", "") for h in headers)
    assert sum("system/" in h for h in headers) == 1
    assert [o.get_text() for o in soup.select("select[name=metric] option")] == ["train_loss"]
    cells = soup.select("table.sweep tbody td.peak")
    expected = {tracker.get_latest_metrics(children)[c]["system/proc.rss_mib.max"] for c in children}
    assert len(cells) == 2 and {float(td["data-v"]) for td in cells} == expected
