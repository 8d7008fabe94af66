"""A database a dashboard user would open: a sweep with a failed child, a DDP run with four ranks, and a
run still going. Shared by the HTTP and the browser tests."""

from __future__ import annotations

import math
from dataclasses import dataclass

from diary_integrations import ExperimentStatus, IterationStatus, LocalTracker

DEPTHS = (2, 4, 8, 12)  # 12 fails
LEARNING_RATES = {2: "0.1", 4: "0.01", 8: "0.001"}
CURVE_STEPS = 25
RANKS = 4
RANK_STEPS = 40


@dataclass
class Demo:
    project_id: int
    experiment_id: int
    sweep_id: int
    children: dict[int, int]  # max_depth -> iteration id
    failed_id: int
    best_id: int  # by accuracy, highest
    ddp_id: int
    rank_ids: list[int]
    running_id: int


def accuracy(depth: int) -> float:
    return 0.8 + depth / 100


def seed(tracker: LocalTracker) -> Demo:
    project_id, _ = tracker.create_project("Fraud detection", description="Card fraud models")
    experiment_id, _ = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "Decision-tree sweep")
    tracker.add_tag("experiment", experiment_id, "baseline")
    children: dict[int, int] = {}
    failed_id = 0
    with tracker.with_iteration(experiment_id, notes="grid over max_depth") as driver:
        tracker.log_parameters(driver.id, {"search": "grid", "cv": 3})
        tracker.add_tag("iteration", driver.id, "sweep")
        for depth in DEPTHS:
            try:
                with tracker.with_iteration(experiment_id, parent_iteration_id=driver.id) as child:
                    children[depth] = child.id
                    tracker.log_parameters(child.id, {"max_depth": depth, "lr": LEARNING_RATES.get(depth, "0.0001")})
                    if depth > 10:
                        failed_id = child.id
                        raise MemoryError(f"max_depth={depth} blew the heap")
                    tracker.log_metric_points(child.id, [
                        ("loss", 1.0 / (1 + step * depth / 10), step) for step in range(CURVE_STEPS)
                    ] + [("accuracy", accuracy(depth), CURVE_STEPS - 1)])
            except MemoryError:
                pass
    with tracker.with_iteration(experiment_id, notes="DDP, 4 ranks") as ddp:
        tracker.log_parameters(ddp.id, {"world_size": RANKS, "strategy": "ddp"})
        rank_ids = []
        for rank in range(RANKS):
            with tracker.with_iteration(experiment_id, parent_iteration_id=ddp.id) as r:
                rank_ids.append(r.id)
                tracker.log_parameters(r.id, {"rank": rank, "local_rank": rank})
                tracker.log_metric_points(r.id, [
                    ("train_loss", 2.0 * math.exp(-step / 15) + rank * 0.01, step) for step in range(RANK_STEPS)
                ])
    running_id, _ = tracker.create_iteration(experiment_id, notes="still training")
    tracker.log_metric_points(running_id, [("loss", 1.0 / (step + 1), step) for step in range(5)])
    best = max((d for d in DEPTHS if d <= 10), key=accuracy)
    return Demo(project_id, experiment_id, driver.id, children, failed_id, children[best], ddp.id, rank_ids,
                running_id)


# A GridSearchCV as the scikit-learn integration writes it: one child per candidate with cv_results_-style
# keys. Candidate 1 is the best by mean_test_score (rank 1); candidate 2 has the shortest fold_time, which
# a dashboard ranking by the alphabetically first key, lowest first, would wrongly crown.
SKLEARN_SCORES = (0.91, 0.94, 0.89)
SKLEARN_FOLD_TIMES = (0.8, 1.4, 0.3)
SKLEARN_ERROR = (
    "ValueError: \n"
    + "All the 5 fits failed.\nIt is very likely that your model is misconfigured.\n"
    + "You can try to debug the error by setting error_score='raise'.\n\n"
    + "Below are more details about the failures:\n" + "-" * 80 + "\n"
    + "5 fits failed with the following error:\n"
    + "ValueError: Solver lbfgs supports only 'l2' or None penalties, got l1 penalty. " * 8
)


@dataclass
class SklearnDemo:
    experiment_id: int
    driver_id: int
    candidates: list[int]  # by candidate index
    failed_id: int


def seed_sklearn(tracker: LocalTracker, project_id: int) -> SklearnDemo:
    experiment_id, _ = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "Logistic grid search")
    candidates = []
    with tracker.with_iteration(experiment_id, notes="GridSearchCV(LogisticRegression)") as driver:
        for index, (score, fold_time) in enumerate(zip(SKLEARN_SCORES, SKLEARN_FOLD_TIMES, strict=True)):
            with tracker.with_iteration(experiment_id, parent_iteration_id=driver.id) as child:
                candidates.append(child.id)
                tracker.log_parameters(child.id, {
                    "C": 10.0 ** -index, "penalty": "l2", "solver": "lbfgs", "class_weight": "balanced",
                    "max_iter": 1000, "tol": 0.0001,
                })
                rank = sorted(SKLEARN_SCORES, reverse=True).index(score) + 1
                tracker.log_metrics(child.id, {
                    "fold_time": fold_time, "mean_test_score": score, "std_test_score": 0.01,
                    "rank_test_score": rank, "mean_fit_time": fold_time * 0.9, "mean_score_time": 0.002,
                    "test_score": score,
                }, step=0)
        failed_id, _ = tracker.create_iteration(experiment_id, parent_iteration_id=driver.id)
        tracker.log_parameters(failed_id, {"C": 1.0, "penalty": "l1", "solver": "lbfgs"})
        tracker.end_iteration(failed_id, IterationStatus.FAILED, error_message=SKLEARN_ERROR)
    return SklearnDemo(experiment_id, driver.id, candidates, failed_id)


# A sweep over three parameters (a numeric one spanning decades, a categorical one, an integer), in an
# experiment of its own: the parallel-coordinates plot and parameter importance. val_accuracy depends
# mostly on the learning rate, a little on the optimizer, not on the seed-like `batch`. One child fails.
GRID_RATES = ("0.0001", "0.001", "0.01", "0.1")
GRID_OPTIMIZERS = ("adam", "sgd")
GRID_BATCHES = (32, 64)
GRID_STEPS = 6


@dataclass
class GridDemo:
    experiment_id: int
    driver_id: int
    children: list[int]
    failed_id: int


def grid_accuracy(rate: str, optimizer: str, batch: int) -> float:
    return 0.9 - 0.08 * abs(math.log10(float(rate)) + 2) + (0.02 if optimizer == "adam" else 0.0) + batch * 1e-5


def seed_grid(tracker: LocalTracker, project_id: int) -> GridDemo:
    experiment_id, _ = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "Three-parameter grid")
    children: list[int] = []
    failed_id = 0
    with tracker.with_iteration(experiment_id, notes="grid over lr x optimizer x batch") as driver:
        for rate in GRID_RATES:
            for optimizer in GRID_OPTIMIZERS:
                for batch in GRID_BATCHES:
                    child_id, _ = tracker.create_iteration(experiment_id, parent_iteration_id=driver.id)
                    children.append(child_id)
                    tracker.log_parameters(child_id, {"lr": rate, "optimizer": optimizer, "batch": batch})
                    if (rate, optimizer, batch) == ("0.1", "sgd", 64):
                        failed_id = child_id
                        tracker.log_metric_points(child_id, [("val_accuracy", 0.3, 0)])
                        tracker.end_iteration(child_id, IterationStatus.FAILED, error_message="loss diverged")
                        continue
                    final = grid_accuracy(rate, optimizer, batch)
                    tracker.log_metric_points(child_id, [
                        (key, value, step) for step in range(GRID_STEPS)
                        for key, value in (("val_accuracy", final * (1 - 0.5 ** (step + 1))),
                                           ("loss", (1 - final) * 2 ** -step))
                    ])
                    tracker.end_iteration(child_id)
    return GridDemo(experiment_id, driver.id, children, failed_id)
