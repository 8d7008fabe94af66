"""Issue 25, the first hour at the command line: a database a newer diary-integrations wrote, a database
the server cannot reach, `diary db current|upgrade`, and `diary ... | head` (a reader that goes away)."""

from __future__ import annotations

import hashlib
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine

from diary_integrations import LocalTracker
from diary_integrations.tracker import migrate

DIARY = [sys.executable, "-m", "diary_integrations.cli"]


def diary(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DIARY, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{text}"
    return lines[0]


def newer_database(tmp_path: Path) -> Path:
    path = tmp_path / "newer.db"
    tracker = LocalTracker(path)
    tracker.create_project("Fraud detection")
    tracker.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099'")
    return path


def digest(path: Path) -> str:
    """The database's rows and schema (its file's bytes change with SQLite's own bookkeeping)."""
    with sqlite3.connect(path) as conn:
        return hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()


def test_a_database_from_a_newer_version_is_one_line_and_untouched(tmp_path):
    path = newer_database(tmp_path)
    before = digest(path)
    listed = diary("ls", "--uri", str(path), cwd=tmp_path)
    assert listed.returncode == 1
    line = one_line(listed.stderr)
    assert "written by a newer diary-integrations (schema 0099" in line and "upgrade the package" in line
    for spelling in ("--uri", "--db"):
        served = diary("server", "--port", "0", spelling, str(path), cwd=tmp_path)
        assert served.returncode == 2 and "listening" not in served.stdout
        assert "newer diary-integrations (schema 0099" in one_line(served.stderr)
    current = diary("db", "current", "--uri", str(path), cwd=tmp_path)
    assert current.returncode == 0 and "schema 0099" in current.stdout and "newer" in current.stdout
    upgraded = diary("db", "upgrade", "--uri", str(path), cwd=tmp_path)
    assert upgraded.returncode == 1 and "newer diary-integrations" in one_line(upgraded.stderr)
    assert digest(path) == before  # nothing was written by any of them


def test_diary_db_upgrade_migrates_an_older_database(tmp_path):
    path = tmp_path / "older.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:  # every migration up to 0005, as a database of an older release
        from alembic import command

        config = migrate.alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "0005")
    engine.dispose()
    current = diary("db", "current", "--uri", str(path), cwd=tmp_path)
    assert "schema 0005" in current.stdout and "diary db upgrade" in current.stdout
    upgraded = diary("db", "upgrade", "--uri", str(path), cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.strip() == f"schema {migrate.HEAD} (was 0005)"
    again = diary("db", "upgrade", "--uri", str(path), cwd=tmp_path)
    assert again.stdout.strip() == f"schema {migrate.HEAD} (already current)"


def test_a_server_whose_database_cannot_be_reached_says_so_in_one_line(tmp_path):
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql+psycopg://tracker:s3cret-pw@127.0.0.1:{port}/diary"
    served = diary("server", "--port", "0", "--uri", url, cwd=tmp_path)
    assert served.returncode == 2
    assert "listening" not in served.stdout
    line = one_line(served.stderr)
    assert line.startswith(f"diary server: cannot use the database postgresql+psycopg://tracker:***@127.0.0.1:{port}")
    assert "s3cret-pw" not in served.stderr and "Traceback" not in served.stderr


def test_a_reader_that_goes_away_gets_no_traceback(tmp_path):
    path = tmp_path / "runs.db"
    tracker = LocalTracker(path)
    project_id, _ = tracker.create_project("p")
    from diary_integrations import ExperimentStatus

    experiment_id, _ = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "e")
    with tracker.with_iteration(experiment_id) as it:
        tracker.log_parameters(it.id, {f"p{i}": i for i in range(50)})
    tracker.close()
    for command in (["show", str(it.id)], ["ls", str(experiment_id)], ["ls"]):
        # The reader is gone before the command writes a byte: `| head -0`, the worst case of `| head -3`.
        process = subprocess.Popen([*DIARY, *command, "--uri", str(path)], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        process.stdout.close()
        _, stderr = process.communicate(timeout=120)
        assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
        assert process.returncode == 141, (command, process.returncode, stderr)


def test_diary_ls_shows_what_varies_between_children_not_the_drivers_summary(tmp_path):
    from diary_integrations import ExperimentStatus
    from diary_integrations.cli.listing import experiment_listing

    tracker = LocalTracker(tmp_path / "sweep.db")
    project_id, _ = tracker.create_project("p")
    experiment_id, _ = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "grid")
    with tracker.with_iteration(experiment_id) as driver:
        tracker.log_parameters(driver.id, {"best_C": 1.0, "best_solver": "lbfgs", "best_tol": 0.1,
                                           "best_max_iter": 100, "search": "grid"})
        for c in (0.1, 1.0):
            for solver in ("lbfgs", "saga"):
                with tracker.with_iteration(experiment_id, parent_iteration_id=driver.id) as child:
                    tracker.log_parameters(child.id, {"C": c, "solver": solver, "max_iter": 100})
    listing = experiment_listing(tracker, experiment_id)
    assert listing["parameters"] == ["C", "solver"]
    tracker.close()


def test_every_argument_of_every_command_says_what_it_is():
    import argparse

    from diary_integrations.cli import build_parser

    silent = []

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*path, name])
            elif not action.help:
                silent.append(" ".join([*path, action.dest]))

    walk(build_parser(), ["diary"])
    assert silent == []
