"""`diary search` and `diary ls --filter/--order-by`: the search grammar from the command line, as a table,
CSV and JSON, and its errors in one line."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from diary_integrations import ExperimentStatus, IterationStatus, LocalTracker
from diary_integrations.cli import main


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse's usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Two experiments: a sweep of 6 children (one FAILED) under a driver, and a lone run."""
    path = tmp_path / "runs.db"
    tracker = LocalTracker(path)
    project = tracker.create_project("Iris").id
    a = tracker.create_experiment(project, ExperimentStatus.IN_PROGRESS, "sweep").id
    b = tracker.create_experiment(project, ExperimentStatus.IN_PROGRESS, "other").id
    driver = tracker.create_iteration(a, name="driver").id
    for n, (opt, loss) in enumerate([("adam", 0.3), ("sgd", 0.5), ("adam", 0.1), ("sgd", 0.2), ("adam", 0.4)]):
        kid = tracker.create_iteration(a, parent_iteration_id=driver, name=f"trial {n}",
                                       parameters={"opt": opt, "lr": 10.0 ** -n}).id
        tracker.log_metrics(kid, {"loss": loss, "acc": 1 - loss})
        tracker.end_iteration(kid)
    broken = tracker.create_iteration(a, parent_iteration_id=driver, name="broken", parameters={"opt": "adam"}).id
    tracker.end_iteration(broken, IterationStatus.FAILED, error_message="ValueError: bad lr")
    tracker.end_iteration(driver)
    lone = tracker.create_iteration(b, name="lone", parameters={"opt": "adam"}).id
    tracker.log_metrics(lone, {"loss": 0.05})
    tracker.end_iteration(lone)
    tracker.close()
    return path


def test_search_as_table_csv_and_json(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    query = ["--filter", "params.opt = 'adam' and status = 'SUCCEEDED'", "--order-by", "metrics.loss"]
    code, out, err = cli(capsys, "search", "1", "2", *query, "--uri", str(db))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["id", "name", "parent", "status", "duration", "params.opt", "params.lr", "metrics.loss"]
    assert [line.split()[0] for line in lines[1:-1]] == ["#8", "#4", "#2", "#6"]  # the lone run first: lowest loss
    assert lines[-1] == "(4 iterations)"
    code, out, _ = cli(capsys, "search", "1,2", *query, "--columns", "id,experiment,metrics.loss,error", "--csv",
                       "--uri", str(db))
    rows = list(csv.reader(io.StringIO(out)))
    assert rows == [["id", "experiment", "metrics.loss", "error"], ["8", "2", "0.05", ""], ["4", "1", "0.1", ""],
                    ["2", "1", "0.3", ""], ["6", "1", "0.4", ""]]
    code, out, _ = cli(capsys, "search", "1", "--filter", "status = 'FAILED'", "--columns", "id,error,params.opt",
                       "--json", "--uri", str(db))
    assert json.loads(out) == [{"id": 7, "error": "ValueError: bad lr", "params.opt": "adam"}]
    code, out, _ = cli(capsys, "search", "1", "--order-by", "metrics.acc DESC", "--max-results", "2",
                       "--columns", "id", "--uri", str(db))
    assert out.splitlines()[1:] == ["#4", "#5", "(2 iterations)"]


def test_ls_gains_filter_and_order(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "ls", "1", "--filter", "depth = 1 and metrics.loss < 0.35",
                         "--order-by", "metrics.loss DESC", "--json", "--uri", str(db))
    assert code == 0, err
    assert [row["id"] for row in json.loads(out)["iterations"]] == [2, 5, 4]


@pytest.mark.parametrize(("args", "message"), [
    (("search", "1", "--filter", "params.lr > 0.1"), "position 10"),
    (("search", "1", "--filter", "metrics.loss < 'x'"), "got \"'x'\" at position 15"),
    (("search", "1", "--order-by", "colour"), "Invalid attribute key 'colour'"),
    (("search", "one"), "not an experiment id: 'one'"),
    (("search", "1", "--columns", "bogus"), "unknown column 'bogus'"),
    (("ls", "--filter", "depth = 1"), "give its EXPERIMENT_ID"),
])
def test_search_errors_are_one_line(db: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...],
                                    message: str) -> None:
    code, out, err = cli(capsys, *args, "--uri", str(db))
    assert code == 1 and message in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1 and out == ""
