"""Tracking servers for benchmarks: ours (`diary server`) and MLflow's, each a real process on a free
loopback port, started once per benchmark run and stopped at exit."""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

_servers: dict[str, tuple[subprocess.Popen[str], str]] = {}


def _stop_all() -> None:
    for process, _ in _servers.values():
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


atexit.register(_stop_all)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen[str], path: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(url + path, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server at {url} did not become healthy")


def diary_server(name: str = "diary") -> str:
    """URL of a `diary server` on a fresh SQLite file (one per name, reused within the run)."""
    if name not in _servers:
        directory = Path(tempfile.mkdtemp(prefix="diary-bench-srv-"))
        port = _free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "diary_integrations.cli", "server", "--host", "127.0.0.1", "--port", str(port),
             "--db", f"sqlite:///{directory / 'server.db'}", "--workers", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        )
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, process, "/health")
        _servers[name] = (process, url)
    return _servers[name][1]


def mlflow_server(name: str = "mlflow") -> str:
    """URL of an `mlflow server` on a fresh SQLite backend store."""
    if name not in _servers:
        directory = Path(tempfile.mkdtemp(prefix="diary-bench-mlsrv-"))
        port = _free_port()
        env = {**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true"}
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
             "--backend-store-uri", f"sqlite:///{directory / 'mlflow.db'}",
             "--default-artifact-root", f"file://{directory / 'artifacts'}", "--workers", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, env=env,
        )
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, process, "/health")
        _servers[name] = (process, url)
    return _servers[name][1]


def peak_rss_mb(name: str) -> float | None:
    """The server process's peak resident memory (VmHWM), in MiB."""
    if name not in _servers:
        return None
    try:
        with open(f"/proc/{_servers[name][0].pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
