"""A decision-tree sweep as an iteration tree, on the embedded SQLite default (./deardiary.db, or
$DIARY_TRACKING_URI): one driver, a child per trial, a crashed trial that does not stop the sweep,
the best SUCCEEDED child picked by its metric, and (on a scratch driver) a deleted driver whose child
survives. The sweep is left in the database to look at: the script ends by saying how.

Running it again adds another sweep to the same project and experiment (found by name).

    python examples/child_iterations.py [DATABASE]
"""

from __future__ import annotations

import os
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
    get_experiment_by_name,
    get_iteration,
    get_metrics,
    get_parameters,
    get_project_by_name,
    get_tracker,
    get_user,
    initialize_database,
    with_iteration,
)


def main(database: str | None = None) -> dict[str, object]:
    tracker = initialize_database(database)
    print(f"tracking into {_shown_path(str(tracker.url))}")

    # Names are unique: find the project and experiment, or create them on the first run.
    user = get_user("default")
    project = get_project_by_name("Fraud detection")
    project_id = project.id if project else create_project("Fraud detection", user_id=user.id).id
    experiment = get_experiment_by_name(project_id, "Decision-tree sweep")
    experiment_id = experiment.id if experiment else create_experiment(
        project_id, ExperimentStatus.IN_PROGRESS, "Decision-tree sweep"
    ).id

    # The driver describes the sweep as a whole.
    driver_id, _ = create_iteration(experiment_id, name="grid over max_depth")
    create_parameter(driver_id, "max_depth_range", "2..12")
    create_parameter(driver_id, "search", "grid")

    # One child per trial, named after its configuration.
    for depth in range(2, 6):
        trial_id, _ = create_iteration(experiment_id, parent_iteration_id=driver_id, name=f"max_depth={depth}")
        create_parameter(trial_id, "max_depth", depth)
        create_metric(trial_id, "accuracy", 0.90 + 0.01 * depth)
        end_iteration(trial_id)

    # with_iteration finalises the child itself: SUCCEEDED on a clean exit...
    with with_iteration(experiment_id, parent_iteration_id=driver_id, name="max_depth=6") as it:
        create_parameter(it.id, "max_depth", 6)
        # A series, not one number: the dashboard draws it as a curve.
        for epoch in range(10):
            create_metric(it.id, "loss", 1.0 / (epoch + 1))
        create_metric(it.id, "accuracy", 0.972)

    # ...FAILED with the exception text when the trial crashes; the sweep carries on.
    try:
        with with_iteration(experiment_id, parent_iteration_id=driver_id, name="max_depth=12") as it:
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

    # Deleting a driver keeps its children (they become top-level). Shown on a scratch driver, so the
    # sweep above stays whole; the scratch child is removed afterwards.
    scratch, _ = create_iteration(experiment_id, name="scratch")
    with with_iteration(experiment_id, parent_iteration_id=scratch) as child:
        pass
    end_iteration(scratch)
    delete_iteration(scratch)
    survivor = get_iteration(child.id)
    delete_iteration(child.id)
    print(
        f"after deleting a driver, its child survives with parent_iteration_id={survivor.parent_iteration_id} "
        f"(a scratch pair, both deleted now: the sweep above is what is left to look at)"
    )

    database = _shown_path(str(get_tracker().url))
    print()
    print("Look at the sweep:")
    print(f"  diary ui {database}    (the dashboard, at http://127.0.0.1:9001/)")
    print(f"  diary ls --uri {database}    (projects and experiments with their ids)")
    print(f"  diary ls {experiment_id} --uri {database}    (this experiment's iterations)")
    print(f"  diary tree {experiment_id} --uri {database}")
    print(f"  diary show {failed.id} --uri {database}    (the failed trial, with its traceback)")
    return {
        "driver": driver_id,
        "experiment_id": experiment_id,
        "children": [c.id for c in children],
        "failed_message": failed.error_message,
        "best_depth": best_depth,
        "survivor_parent": survivor.parent_iteration_id,
    }


def _shown_path(url: str) -> str:
    """The database as a user would type it: relative to the working directory when inside it."""
    if not url.startswith("sqlite:///"):
        return url
    path = url[len("sqlite:///"):]
    relative = os.path.relpath(path)
    return relative if not relative.startswith("..") else path


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
