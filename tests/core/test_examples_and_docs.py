"""The user-facing stories: examples/child_iterations.py, every ```python block of README.md, `diary tree`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from diary_integrations import IterationStatus, LocalTracker

ROOT = Path(__file__).resolve().parents[2]
README_BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_child_iterations_example(tmp_path):
    db = tmp_path / "sweep.db"
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "child_iterations.py"), str(db)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "error_message='MemoryError: max_depth=12 blew the heap'" in out
    assert "the driver has 6 children" in out
    assert "best SUCCEEDED child" in out and "max_depth=6, accuracy=0.972" in out
    assert "survives with parent_iteration_id=None" in out
    assert "diary ui sweep.db" in out  # it says how to look at what it left
    tracker = LocalTracker(db)
    (driver,) = [it for it in tracker.get_iterations(1) if it.parent_iteration_id is None]
    assert driver.name == "grid over max_depth" and driver.status is IterationStatus.SUCCEEDED
    children = tracker.get_child_iterations(driver.id)  # the sweep is left whole, to look at
    assert [c.name for c in children] == [f"max_depth={d}" for d in (2, 3, 4, 5, 6, 12)]
    statuses = sorted(it.status.name for it in children)
    assert statuses == ["FAILED"] + ["SUCCEEDED"] * 5
    assert not any(it.status is IterationStatus.RUNNING for it in tracker.get_iterations(1))


@pytest.mark.slow  # each block is a fresh interpreter, some of them train
@pytest.mark.system_metrics  # as a reader runs them: with system metrics on, as by default
@pytest.mark.parametrize("block", README_BLOCKS, ids=[f"block{n}" for n in range(len(README_BLOCKS))])
def test_readme_python_blocks_run(block, tmp_path):
    # A reader runs a snippet, changes a line and runs it again in the same directory: the blocks that make
    # projects by name must find them the second time (the integrations' blocks find-or-create by design,
    # and train: once is enough for them).
    runs = 2 if "create_project" in block or "create_model" in block else 1
    for run in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", block], capture_output=True, text=True, timeout=600, cwd=tmp_path
        )
        assert done.returncode == 0, (
            f"README block failed on run {run + 1}:\n{block}\n--- stderr ---\n{done.stderr[-4000:]}"
        )


def test_readme_has_python_blocks():
    assert README_BLOCKS, "README.md lost its python examples"


def test_every_example_is_run_by_a_test():
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    for example in (ROOT / "examples").glob("*.py"):
        assert example.name in tests, f"{example.name} is not run by any test"


def test_diary_tree_cli(tmp_path):
    tracker = LocalTracker(tmp_path / "t.db")
    project_id, _ = tracker.create_project("P")
    experiment_id, _ = tracker.create_experiment(project_id, 1, "sweep")
    driver, _ = tracker.create_iteration(experiment_id)
    ok, _ = tracker.create_iteration(experiment_id, parent_iteration_id=driver)
    tracker.log_metrics(ok, {"accuracy": 0.97, "loss": 0.1}, step=0)
    tracker.end_iteration(ok)
    bad, _ = tracker.create_iteration(experiment_id, parent_iteration_id=driver)
    tracker.end_iteration(bad, IterationStatus.FAILED, error_message="ValueError: bad depth")
    done = subprocess.run(
        [sys.executable, "-m", "diary_integrations.cli", "tree", str(experiment_id),
         "--uri", str(tmp_path / "t.db"), "--metrics", "accuracy"],
        capture_output=True, text=True, check=True,
    )
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"Experiment {experiment_id} · sweep")
    assert lines[1].startswith(f"▶ #{driver} RUNNING")
    assert lines[2].startswith(f"├─ ✓ #{ok} SUCCEEDED") and "accuracy=0.97" in lines[2] and "loss" not in lines[2]
    assert lines[3].startswith(f"└─ ✗ #{bad} FAILED") and lines[3].endswith("— ValueError: bad depth")
    missing = subprocess.run(
        [sys.executable, "-m", "diary_integrations.cli", "tree", "999", "--uri", str(tmp_path / "t.db")],
        capture_output=True, text=True,
    )
    assert missing.returncode == 1 and "experiment 999 does not exist in sqlite:///" in missing.stderr


def test_cli_reports_ordinary_failures_in_one_line(tmp_path):
    def diary(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "diary_integrations.cli", *args],
                              capture_output=True, text=True, cwd=tmp_path, timeout=120)

    typo = diary("tree", "1", "--uri", str(tmp_path / "typo.db"))
    assert typo.returncode == 1 and "no database at" in typo.stderr and "Traceback" not in typo.stderr
    assert not (tmp_path / "typo.db").exists()  # a read never creates a database
    default = diary("reap")  # no ./deardiary.db here either
    assert default.returncode == 1 and "no database at" in default.stderr
    down = diary("tree", "1", "--uri", "http://127.0.0.1:9")  # nothing listens on the discard port
    assert down.returncode == 1 and down.stderr.startswith("diary tree: ") and "Traceback" not in down.stderr
    assert len(down.stderr.strip().splitlines()) == 1
