"""capture_environment(): what is needed to tell how a run was made (Python, git, entrypoint, packages)."""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata


@dataclass(frozen=True, slots=True)
class EnvironmentSnapshot:
    python_version: str
    platform: str
    hostname: str
    git_sha: str
    git_dirty: bool
    entrypoint: str
    packages: str


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=5, check=False, cwd=os.getcwd()
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _entrypoint() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:  # `python -m package.module`
        return f"-m {spec.name}"
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    return os.path.abspath(argv0) if argv0 and argv0 != "-c" else "<interactive>"


def _packages() -> str:
    seen = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name")
        if name:
            seen[name.lower()] = f"{name}=={dist.version}"
    return "\n".join(seen[k] for k in sorted(seen))


@functools.lru_cache(maxsize=8)
def _capture(cwd: str, entrypoint: str) -> EnvironmentSnapshot:
    sha = (_git("rev-parse", "HEAD") or "").strip()
    dirty = bool(sha) and bool((_git("status", "--porcelain", "--untracked-files=no") or "").strip())
    return EnvironmentSnapshot(
        python_version=platform.python_version(),
        platform=platform.platform(),
        hostname=socket.gethostname(),
        git_sha=sha,
        git_dirty=dirty,
        entrypoint=entrypoint,
        packages=_packages(),
    )


def capture_environment() -> EnvironmentSnapshot:
    """The snapshot for this process; cached per working directory, since it does not change mid-run."""
    return _capture(os.getcwd(), _entrypoint())
