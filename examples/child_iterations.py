"""A decision-tree sweep as an iteration tree, on the embedded SQLite default (./deardiary.db, or
$DIARY_TRACKING_URI): one driver, a child per trial, a crashed trial that does not stop the sweep,
the best SUCCEEDED child picked by its metric, and the driver deleted while its children survive.

    python examples/child_iterations.py [DATABASE]
"""

from __future__ import annotations

import sys

from diary_integrations import (
    ExperimentStatus,
    IterationStatus,
    create_experiment,
    create_iteration,
    create_metric,
    create_parameter,
    create_project,
    delete_iteration,
    end_iteration,
    format_tree,
    get_child_iterations,
    get_iteration,
    get_metrics,
    get_parameters,
    get_tracker,
    get_user,
    initialize_database,
    with_iteration,
)


def main(database: str | None = None) -> dict[str, object]:
    tracker = initialize_database(database)
    print(f"tracking into {tracker.url}")

    user = get_user("default")
    project_id, _ = create_project("Fraud detection", user_id=user.id)
    experiment_id, _ = create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "Decision-tree sweep")

    # The driver describes the sweep as a whole.
    driver_id, _ = create_iteration(experiment_id)
    create_parameter(driver_id, "max_depth_range", "2..10")
    create_parameter(driver_id, "search", "grid")

    # One child per trial.
    for depth in range(2, 6):
        trial_id, _ = create_iteration(experiment_id, parent_iteration_id=driver_id)
        create_parameter(trial_id, "max_depth", depth)
        create_metric(trial_id, "accuracy", 0.90 + 0.01 * depth)
        end_iteration(trial_id)

    # with_iteration finalises the child itself: SUCCEEDED on a clean exit...
    with with_iteration(experiment_id, parent_iteration_id=driver_id) as it:
        create_parameter(it.id, "max_depth", 6)
        create_metric(it.id, "accuracy", 0.972)
    succeeded_id = it.id

    # ...FAILED with the exception text when the trial crashes; the sweep carries on.
    try:
        with with_iteration(experiment_id, parent_iteration_id=driver_id) as it:
            create_parameter(it.id, "max_depth", 12)
            raise MemoryError("max_depth=12 blew the heap")
    except MemoryError:
        pass
    failed = get_iteration(it.id)
    print(f"failed trial #{failed.id}: {failed.status.name}, error_message={failed.error_message!r}")

    children = get_child_iterations(driver_id)
    print(f"the driver has {len(children)} children, ordered by id: {[c.id for c in children]}")

    succeeded = [c for c in children if c.status is IterationStatus.SUCCEEDED]
    best = max(succeeded, key=lambda c: get_metrics(c.id, key="accuracy")[-1].value)
    best_depth = get_parameters(best.id)[0].value
    best_accuracy = get_metrics(best.id, key="accuracy")[-1].value
    print(f"best SUCCEEDED child: #{best.id} with max_depth={best_depth}, accuracy={best_accuracy}")

    end_iteration(driver_id)
    print()
    print(format_tree(get_tracker(), experiment_id))
    print()

    delete_iteration(driver_id)
    survivor = get_iteration(succeeded_id)
    print(
        f"after deleting the driver, child #{survivor.id} survives "
        f"with parent_iteration_id={survivor.parent_iteration_id}"
    )
    return {
        "experiment_id": experiment_id,
        "children": [c.id for c in children],
        "failed_message": failed.error_message,
        "best_depth": best_depth,
        "survivor_parent": survivor.parent_iteration_id,
    }


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
