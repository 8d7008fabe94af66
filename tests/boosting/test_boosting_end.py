"""The end of an XGBoost, LightGBM or Keras training in a real process: a custom objective (a callback, for
Keras) that raises at round 10 ends the run FAILED with its text and rounds 0-9 stored once, also when the
program catches the exception and exits cleanly; SIGTERM mid-training ends it KILLED with every recorded
round once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from diary_integrations import IterationStatus, connect

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).with_name("training_script.py")
KEY = {"xgboost": "train-logloss", "lightgbm": "training-binary_logloss", "keras": "loss"}


def start(library: str, uri: str, how: str, cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DIARY_DRIVER_ITERATION_ID", "LOCAL_RANK", "RANK"}}
    return subprocess.Popen([sys.executable, str(SCRIPT), library, uri, how], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd, env=env)


def read_iteration(out: str) -> int:
    [iteration_id] = [int(line.split()[1]) for line in out.splitlines() if line.startswith("ITERATION")]
    return iteration_id


@pytest.mark.parametrize("library, where, how", [
    ("xgboost", "sqlite", "raise"), ("lightgbm", "sqlite", "raise"), ("keras", "sqlite", "raise"),
    ("xgboost", "server", "raise"),  # the end through a `diary server`, as the journal-first client sends it
    # The program catches the exception: no hook at exit sees it, the run still ends with its text.
    ("xgboost", "sqlite", "catch"), ("lightgbm", "sqlite", "catch"), ("keras", "sqlite", "catch"),
    ("lightgbm", "server", "catch"),
])
def test_a_training_that_raises_ends_failed_with_its_text(tmp_path, library, where, how, request):
    uri = request.getfixturevalue("server_url") if where == "server" else f"sqlite:///{tmp_path / 'runs.db'}"
    process = start(library, uri, how, tmp_path)
    out, err = process.communicate(timeout=180)
    if how == "catch":
        assert process.returncode == 0 and "CAUGHT custom objective blew up at round 10" in out, err[-3000:]
    else:
        assert process.returncode == 1 and "custom objective blew up at round 10" in err, err[-3000:]
    tracker = connect(uri)
    it = tracker.get_iteration(read_iteration(out))
    assert it.status is IterationStatus.FAILED
    assert it.error_message == "ValueError: custom objective blew up at round 10"
    assert "Traceback (most recent call last)" in it.traceback
    assert [m.step for m in tracker.get_metrics(it.id, key=KEY[library])] == list(range(10))


@pytest.mark.parametrize("library", ["xgboost"])  # the mechanism is CallbackRun's: one library shows it
def test_sigterm_mid_training_ends_killed(tmp_path, library):
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    process = start(library, uri, "sleep", tmp_path)
    assert process.stdout is not None
    lines = []
    while True:
        line = process.stdout.readline()
        assert line, process.stderr.read()  # type: ignore[union-attr]
        lines.append(line)
        if line.startswith("ROUND") and int(line.split()[1]) >= 20:
            break
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    out = "".join(lines) + out
    assert process.returncode == 128 + signal.SIGTERM, err[-3000:]
    tracker = connect(uri)
    it = tracker.get_iteration(read_iteration(out))
    assert it.status is IterationStatus.KILLED and it.error_message == "Terminated: received SIGTERM"
    steps = [m.step for m in tracker.get_metrics(it.id, key=KEY[library])]
    last = max(int(line.split()[1]) for line in out.splitlines() if line.startswith("ROUND"))
    assert steps == list(range(len(steps))) and len(steps) >= last + 1
