"""MlflowClient paging through 2,500 runs of a real `diary server`: every run once, in MLflow's order,
with and without a filter. The runs are made in one batch through diary's own tracker (creating them one
request at a time would be the slow part of the test); MLflow then reads them as it reads its own."""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow_helpers import MlflowServer

from diary_integrations import IterationEnding, IterationStatus, LocalTracker, NewIteration

RUNS = 2500


def _pages(client: MlflowClient, experiment_id: str, **search: object) -> list[list[str]]:
    pages, token = [], None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token, **search)
        pages.append([r.info.run_id for r in page])
        token = page.token
        if not token:
            return pages


def test_paging_through_2500_runs(mlflow_server: MlflowServer) -> None:
    client = MlflowClient()
    experiment_id = client.create_experiment("many")
    tracker = LocalTracker(f"sqlite:///{mlflow_server.database}", record_processes=False)
    try:
        ids = tracker.create_iterations(
            int(experiment_id),
            [
                NewIteration(parameters={"parity": "even" if n % 2 == 0 else "odd"}, name=f"run-{n:04d}")
                for n in range(RUNS)
            ],
        )
        tracker.end_iterations([IterationEnding(i, IterationStatus.SUCCEEDED) for i in ids])
    finally:
        tracker.close()
    pages = _pages(client, experiment_id)
    assert [len(p) for p in pages] == [1000, 1000, 500]
    seen = [run_id for page in pages for run_id in page]
    assert len(set(seen)) == RUNS and set(seen) == {str(i) for i in ids}

    odd = _pages(
        client,
        experiment_id,
        filter_string="params.parity = 'odd' and attributes.status = 'FINISHED'",
        order_by=["attributes.run_name DESC"],
    )
    assert [len(p) for p in odd] == [1000, 250]
    names = [client.get_run(run_id).info.run_name for run_id in (odd[0][0], odd[0][1], odd[1][-1])]
    assert names == ["run-2499", "run-2497", "run-0001"]
    assert len(mlflow_server.diary.get_iterations(int(experiment_id), status="SUCCEEDED")) == RUNS
