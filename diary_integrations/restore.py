"""DearDiary's environment restore: what an iteration's snapshot recorded, written out so the run can be
made again (a pinned requirements.txt, the git SHA to check out, the entrypoint). Nothing is installed
or checked out here; the files and the result say what to do."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .tracker.errors import Unprocessable
from .tracker.records import Environment
from .tracker.validation import check_id


@dataclass(frozen=True)
class RestoredEnvironment:
    """Where the snapshot was written, and what it says."""

    directory: Path
    requirements: Path  # pinned `name==version` lines, for `pip install -r`
    python_version: str
    git_sha: str
    git_dirty: bool
    entrypoint: str


def requirements_text(env: Environment) -> str:
    """The recorded distributions as a requirements file, one `name==version` pin a line."""
    lines = [line.strip() for line in env.packages.splitlines() if line.strip()]
    header = f"# recorded for iteration {env.iteration_id} (Python {env.python_version or 'unknown'})\n"
    return header + "".join(f"{line}\n" for line in lines)


def restore_environment(
    iteration_id: int, directory: str | os.PathLike[str], *, tracker: Any = None
) -> RestoredEnvironment:
    """Write `requirements.txt` (pinned to the recorded distributions) and `environment.json` (the git
    SHA to check out, whether the tree was dirty, the entrypoint, Python and platform) of the iteration's
    snapshot into `directory` (created if missing). Unprocessable when the iteration has no snapshot
    (children skip it: restore their top-level iteration)."""
    iteration_id = check_id(iteration_id, "iteration_id")
    if tracker is None:
        from .connection import get_tracker

        tracker = get_tracker()
    env = tracker.get_environment(iteration_id)
    if env is None:
        reason = "does not exist" if tracker.get_iteration(iteration_id) is None else "has no environment snapshot"
        raise Unprocessable(f"iteration_id: iteration {iteration_id} {reason}", field="iteration_id")
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    requirements = target / "requirements.txt"
    requirements.write_text(requirements_text(env))
    summary = {
        "iteration_id": env.iteration_id,
        "python_version": env.python_version,
        "platform": env.platform,
        "git_sha": env.git_sha,
        "git_dirty": env.git_dirty,
        "entrypoint": env.entrypoint,
    }
    (target / "environment.json").write_text(json.dumps(summary, indent=2) + "\n")
    return RestoredEnvironment(target, requirements, env.python_version, env.git_sha, env.git_dirty, env.entrypoint)
