"""The models page in a real headless Chromium: a project's models with their versions, stages and
aliases, each version linked to the iteration (and the sweep) that produced it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from diary_integrations import LocalTracker, ModelStage

from .processes import diary_ui
from .seed import Demo, seed
from .test_browser import shot

pytestmark = pytest.mark.slow  # a real browser


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Demo, dict[str, int]]]:
    folder = tmp_path_factory.mktemp("browser-models")
    tracker = LocalTracker(folder / "sweep.db")
    demo = seed(tracker)
    model_id, _ = tracker.create_model(demo.project_id, "fraud-tree", description="the card-fraud tree")
    v1 = tracker.create_model_version(model_id, demo.children[4]).id
    v2 = tracker.create_model_version(model_id, demo.best_id).id
    tracker.update_model_version(v1, stage=ModelStage.PRODUCTION)
    tracker.update_model_version(v2, stage=ModelStage.PRODUCTION)  # archives v1
    tracker.set_model_alias(model_id, "champion", 2)
    tracker.set_model_alias(model_id, "challenger", 1)
    tracker.create_model(demo.project_id, "empty-model")
    ids = {"model": model_id, "v1": v1, "v2": v2}
    with diary_ui(folder / "sweep.db", folder / "ui.log") as url:
        yield url, demo, ids
    tracker.close()


def test_models_page_shows_versions_stages_and_aliases(page, site):
    url, demo, ids = site
    page.goto(f"{url}/ui/")
    page.locator("a.models-link").click()
    assert page.url.endswith(f"/ui/projects/{demo.project_id}/models")
    card = page.locator(f"#model-{ids['model']}")
    assert card.locator("h2").inner_text() == "fraud-tree"
    rows = card.locator("tr.version")
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.version)") == ["2", "1"]  # newest first
    newest, oldest = rows.nth(0), rows.nth(1)
    assert newest.locator(".stage").inner_text() == "PRODUCTION"
    assert oldest.locator(".stage").inner_text() == "ARCHIVED"
    assert newest.locator(".aliases .tag").all_inner_texts() == ["champion"]
    assert oldest.locator(".aliases .tag").all_inner_texts() == ["challenger"]
    assert newest.locator("a.sweep-link").get_attribute("href").endswith(f"/iterations/{demo.sweep_id}/sweep")
    assert "No versions yet" in page.locator(".card.model", has_text="empty-model").inner_text()
    shot(page, "models")
    newest.locator("a.iteration-link").click()
    assert page.url.endswith(f"/ui/iterations/{demo.best_id}")


def test_unknown_project_is_a_404_page(page, site):
    url, _, _ = site
    response = page.goto(f"{url}/ui/projects/999999/models")
    assert response.status == 404 and "Project not found" in page.content()
