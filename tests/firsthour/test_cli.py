"""Issue 14, the first hour from the command line: `scripts/dev example` twice in a fresh directory, the
README's next-step commands on what it leaves, `diary --version`, `diary ls`, `diary show` (text and
JSON) and their errors, checked URIs everywhere, HEAD wherever GET works."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from diary_integrations import LocalTracker, Unprocessable, connect
from diary_integrations.tracker.errors import Unprocessable as CoreUnprocessable

ROOT = Path(__file__).resolve().parents[2]


def diary(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "diary_integrations.cli", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


class Ran:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> Ran:
    """`diary ARGS` in this process (a subprocess costs seconds of imports on a busy machine)."""
    from diary_integrations.cli import main

    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse's --version and usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return Ran(code, out, err)


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository's entry points with a `.venv` that is already set up (its stamp matches),
    so `scripts/dev example` runs the example without reinstalling; `diary` runs this checkout."""
    clone = tmp_path_factory.mktemp("clone")
    for name in ("scripts", "examples"):
        shutil.copytree(ROOT / name, clone / name)
    shutil.copy(ROOT / "pyproject.toml", clone / "pyproject.toml")
    venv = clone / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    (venv / "python").chmod(0o755)
    (venv / "diary").write_text(f'#!/bin/sh\nexec {sys.executable} -m diary_integrations.cli "$@"\n')
    (venv / "diary").chmod(0o755)
    stamp = subprocess.run("sha1sum pyproject.toml scripts/dev | sha1sum | cut -c1-12", shell=True, cwd=clone,
                           capture_output=True, text=True, check=True).stdout.strip()
    (clone / ".venv" / f".diary-installed-{stamp}").touch()
    return clone


@pytest.fixture(scope="module")
def example_runs(fresh_clone: Path) -> list[subprocess.CompletedProcess[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DIARY_TRACKING_URI", None)
    return [subprocess.run([str(fresh_clone / "scripts" / "dev"), "example"], capture_output=True, text=True,
                           env=env, timeout=300) for _ in range(2)]


def test_scripts_dev_example_twice_makes_one_project(example_runs, fresh_clone):
    for run in example_runs:
        assert run.returncode == 0, run.stderr
        assert run.stderr == ""  # no pages of warnings
        assert "scripts/dev: ready: diary-integrations " in run.stdout
        assert "diary ui deardiary.db" in run.stdout  # it ends by saying how to look at the result
        assert "source " in run.stdout.splitlines()[-1]  # and where the diary command is
    tracker = LocalTracker(fresh_clone / "deardiary.db")
    assert [p.name for p in tracker.get_projects()] == ["Fraud detection"]
    (experiment,) = tracker.get_experiments(tracker.get_projects()[0].id)
    drivers = [it for it in tracker.get_iterations(experiment.id) if it.parent_iteration_id is None]
    assert len(drivers) == 2  # one sweep per run, both whole
    assert [len(tracker.get_child_iterations(d.id)) for d in drivers] == [6, 6]
    tracker.close()


def readme_next_steps() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\nsource \.venv/bin/activate\n(.*?)```", text, flags=re.S)
    assert block, "README.md lost its next-step commands"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.startswith("diary ")]


@pytest.mark.slow  # starts `diary ui` (seconds of web-stack imports) beside the CLI commands
def test_readme_next_steps_work_on_what_the_example_leaves(example_runs, fresh_clone):
    commands = readme_next_steps()
    assert [c.split()[1] for c in commands] == ["ls", "ls", "show", "tree", "ui"]
    for command in commands:
        args = command.split()[1:]
        if args[0] == "ui":
            process = subprocess.Popen([sys.executable, "-m", "diary_integrations.cli", *args, "--port", "0"],
                                       cwd=fresh_clone, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                url = process.stdout.readline().split()[-1]
                assert url.startswith("http://127.0.0.1:"), process.stderr.read()
                with urllib.request.urlopen(url) as page:
                    assert "Fraud detection" in page.read().decode()
            finally:
                process.terminate()
                process.wait(timeout=10)
            continue
        done = diary(*args, cwd=fresh_clone)
        assert done.returncode == 0, f"{command}: {done.stderr}"
        if args[0] == "show":
            assert "MemoryError: max_depth=12 blew the heap" in done.stdout  # iteration 7 is the failed trial
        if args == ["ls", "1"]:
            assert "max_depth=12" in done.stdout and "grid over max_depth" in done.stdout


def test_version():
    done = diary("--version", cwd=ROOT)
    assert done.returncode == 0 and re.fullmatch(r"diary-integrations \S+\n", done.stdout)


@pytest.fixture
def sweep_db(tmp_path: Path) -> Path:
    db = tmp_path / "deardiary.db"
    subprocess.run([sys.executable, str(ROOT / "examples" / "child_iterations.py"), str(db)], check=True,
                   capture_output=True, cwd=tmp_path, timeout=120)
    return db


def test_ls_and_show_text_and_json(sweep_db, tmp_path, capsys):
    overview = cli(capsys, "ls", "--uri", str(sweep_db))
    assert overview.returncode == 0, overview.stderr
    assert "project 1 · Fraud detection" in overview.stdout
    assert re.search(r"experiment 1 · Decision-tree sweep  IN_PROGRESS  7 iterations \(6✓ 1✗\)  last activity",
                     overview.stdout)
    data = json.loads(cli(capsys, "ls", "--json", "--uri", str(sweep_db)).stdout)
    (exp,) = data[0]["experiments"]
    assert (data[0]["name"], exp["id"], exp["iterations"], exp["statuses"]) == (
        "Fraud detection", 1, 7, {"SUCCEEDED": 6, "FAILED": 1})
    listing = cli(capsys, "ls", "1", "--metrics", "accuracy", "--uri", str(sweep_db))
    lines = listing.stdout.splitlines()
    assert lines[1].split()[:6] == ["id", "name", "parent", "status", "duration", "max_depth"]
    assert "accuracy" in lines[1] and "loss" not in lines[1]
    assert any(line.startswith("#7") and "max_depth=12" in line and "MemoryError" in line for line in lines)
    rows = json.loads(cli(capsys, "ls", "1", "--json", "--uri", str(sweep_db)).stdout)
    by_id = {row["id"]: row for row in rows["iterations"]}
    assert by_id[6]["name"] == "max_depth=6" and by_id[6]["metrics"]["accuracy"] == 0.972
    assert by_id[7]["status"] == "FAILED" and by_id[7]["parent_iteration_id"] == 1
    show = cli(capsys, "show", "7", "--uri", str(sweep_db))
    assert show.stdout.startswith("iteration 7 · max_depth=12\n  status      ✗ FAILED")
    assert "error       MemoryError: max_depth=12 blew the heap" in show.stdout
    assert "  max_depth = 12" in show.stdout and "Traceback (most recent call last)" in show.stdout
    detail = json.loads(cli(capsys, "show", "6", "--json", "--uri", str(sweep_db)).stdout)
    assert detail["parameters"] == {"max_depth": "6"} and detail["metrics"] == {"accuracy": 0.972, "loss": 0.1}


def test_ls_and_show_errors(sweep_db, tmp_path, capsys):
    cases = {
        ("show", "99", "--uri", str(sweep_db)): "iteration 99 does not exist",
        ("ls", "99", "--uri", str(sweep_db)): "experiment 99 does not exist",
        ("ls", "--uri", str(tmp_path / "typo.db")): "no database at",
        ("show", "1", "--uri", "htp://x"): "uri: unknown scheme 'htp://'",
        ("ls", "--uri", str(tmp_path / "missing" / "x.db")): "uri: the directory",
        ("ls", "--uri", "http://"): "uri: 'http://' has no host",
        ("tree", "1", "--uri", "mysql://u@h/d"): "uri: unknown scheme 'mysql://'",
        ("reap", "--uri", "htp://x"): "uri: unknown scheme",
        ("ui", "htp://x"): "uri: unknown scheme",
        ("server", "--db", "http://localhost:9000"): "uri: 'http://localhost:9000' is a server",
        ("server", "--db", "htp://x"): "uri: unknown scheme",
    }
    for args, message in cases.items():
        done = cli(capsys, *args)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
        assert "listening" not in done.stdout
    assert not (tmp_path / "typo.db").exists() and not (tmp_path / "missing").exists()


def test_bad_uris_are_refused_when_a_tracker_is_made(tmp_path):
    bad = ["htp://x", "http://", "http://h:99999", "mysql://u@h/db", str(tmp_path / "no" / "x.db"),
           f"sqlite:///{tmp_path}/no/x.db", "localhost:9000", ""]
    for uri in bad:
        with pytest.raises(Unprocessable, match="uri: .*; use a SQLite file path") as caught:
            connect(uri)
        assert caught.value.field == "uri"
    assert not (tmp_path / "no").exists()
    for good in [tmp_path / "x.db", f"sqlite:///{tmp_path / 'y.db'}", "sqlite://", "http://127.0.0.1:9",
                 "postgresql+psycopg://u@127.0.0.1:1/db"]:
        connect(good).close()


@pytest.mark.slow  # imports scikit-learn and Lightning: ~15 s on a busy machine
def test_integrations_refuse_a_bad_uri_at_once(tmp_path):
    pytest.importorskip("sklearn")
    from diary_integrations.sklearn import DiaryCallback

    with pytest.raises(CoreUnprocessable, match="uri: unknown scheme"):
        DiaryCallback(project="P", experiment="E", uri="htp://x")
    pytest.importorskip("pytorch_lightning")
    from diary_integrations.lightning import DiaryLogger

    with pytest.raises(CoreUnprocessable, match="uri: the directory"):
        DiaryLogger("P", "E", uri=str(tmp_path / "missing" / "runs.db"))


def test_head_wherever_get(sweep_db):
    from fastapi.testclient import TestClient

    from diary_integrations.dashboard import create_dashboard
    from diary_integrations.server import create_app

    tracker = LocalTracker(sweep_db)
    for app in (create_dashboard(tracker), create_app(tracker)):
        client = TestClient(app)
        for path in ("/", "/ui/", "/ui/experiments/1", "/ui/iterations/1/sweep", "/ui/static/dashboard.css"):
            head, get = client.head(path, follow_redirects=False), client.get(path, follow_redirects=False)
            assert head.status_code == get.status_code != 405, path
            assert head.content == b"" and head.headers.get("content-length") == get.headers.get("content-length")
    assert TestClient(create_app(tracker)).head("/health").status_code == 200
    tracker.close()
