"""`diary server` processes for the scale-out tests: started as a user starts them, stopped at teardown."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

from server_harness import LiveServer, read_url

ADMIN_PASSWORD = "scale-out admin pw"
# Every server process over one database shares the secret that signs tokens.
JWT_SECRET = secrets.token_urlsafe(32)


def auth_env(**extra: Any) -> dict[str, str]:
    """Settings for servers with auth on (what every process over one database must share)."""
    env = {"DIARY_ENABLE_AUTH": "true", "DIARY_JWT_SECRET": JWT_SECRET, "DIARY_ADMIN_PASSWORD": ADMIN_PASSWORD}
    env.update({key: str(value) for key, value in extra.items()})
    return env


def start_server(
    workdir: Path,
    name: str,
    db_url: str,
    env: dict[str, str],
    *args: str,
    host: str = "127.0.0.1",
    command_prefix: tuple[str, ...] = (),
) -> LiveServer:
    """`diary server --port 0` (plus `args`), its stderr in workdir/NAME.log."""
    log = workdir / f"{name}.log"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DIARY_")}
    process = subprocess.Popen(
        [
            *command_prefix,
            sys.executable,
            "-m",
            "diary_integrations.cli",
            "server",
            "--host",
            host,
            "--port",
            "0",
            "--db",
            db_url,
            *args,
        ],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
        env={**clean, **env},
    )
    return LiveServer(process, read_url(process, log), log)
