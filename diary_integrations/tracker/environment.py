"""capture_environment(): what is needed to tell how a run was made (Python, git, entrypoint, packages)."""

from __future__ import annotations

import functools
import hashlib
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


_adopted_entrypoint: str | None = None


def adopt_entrypoint(entrypoint: str) -> None:
    """Snapshots name this entrypoint: a sidecar records the script of the process it serves."""
    global _adopted_entrypoint
    _adopted_entrypoint = entrypoint


def entrypoint() -> str:
    """The script or `-m module` this process runs (or the one it adopted)."""
    return _adopted_entrypoint or _entrypoint()


def _entrypoint() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:  # `python -m package.module`
        return f"-m {spec.name}"
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    return os.path.abspath(argv0) if argv0 and argv0 != "-c" else "<interactive>"


def _scan_packages() -> str:
    seen = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name")
        if name:
            seen[name.lower()] = f"{name}=={dist.version}"
    return "\n".join(seen[k] for k in sorted(seen))


def _cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "diary-integrations", "environment")


def _packages_key() -> str:
    """What the installed set depends on: the interpreter and its package directories, each with its
    modification time (installing or removing a distribution adds or removes a directory there, which
    changes it). Other path entries (the script's folder, which every run writes to) count by name only."""
    parts = [sys.executable]
    for entry in sys.path:
        parts.append(entry)
        if entry.rstrip(os.sep).endswith(("site-packages", "dist-packages")):
            try:
                parts.append(str(os.stat(entry).st_mtime_ns))
            except OSError:
                pass
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def _packages() -> str:
    """The installed distributions as `name==version` lines. Reading ~300 distributions' metadata takes
    ~0.4 s, paid before a run's first step, so the answer is kept in the user's cache directory for as
    long as the package directories are unchanged."""
    path = os.path.join(_cache_dir(), _packages_key() + ".txt")
    try:
        with open(path, encoding="utf-8") as cached:
            return cached.read()
    except OSError:
        pass
    packages = _scan_packages()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        partial = f"{path}.{os.getpid()}.tmp"
        with open(partial, "w", encoding="utf-8") as out:
            out.write(packages)
        os.replace(partial, path)  # whole or absent: a reader never sees half a list
    except OSError:
        pass  # a read-only home only costs the scan next time
    return packages


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
    return _capture(os.getcwd(), entrypoint())
