"""Test hosts made of Linux network namespaces, so that processes "on other hosts" can only meet over TCP.

`make_hosts(n)` gives n namespaces, each with loopback and one veth `eth0` holding 10.A.B.i/24, wired to
a bridge that lives in a namespace of its own (the test's switch): the machine's own namespace is never
touched. Names carry the test process's pid and a random tag, so parallel runs never collide, and the
next run removes namespaces left by a test process killed before its teardown. `remove()` ends every
process started in the hosts (and every process left in them, which only these started) and deletes
the namespaces (their veths go with them); the fixture calls it even on failure.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

DEVICE = "eth0"


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")


def netns_problem() -> str | None:
    """None when this machine can make network namespaces and veth pairs, else why not."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    probe = f"diary-probe-{uuid.uuid4().hex[:8]}"
    try:
        _ip("netns", "add", probe)
        _ip("-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1")
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot make a network namespace with a veth pair: {exc}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=60)
    return None


def require_netns() -> None:
    """Skip the test where network namespaces cannot be made; in CI that is a failure."""
    import pytest

    problem = netns_problem()
    if problem:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"CI must be able to make network namespaces: {problem}")
        pytest.skip(f"network namespaces are not usable here: {problem}")


@dataclass
class Host:
    namespace: str
    address: str

    def command(self, *argv: str) -> list[str]:
        """argv run inside this host."""
        return ["ip", "netns", "exec", self.namespace, *argv]


@dataclass
class Hosts:
    tag: str
    switch: str
    hosts: list[Host]
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)

    def popen(self, host: Host, argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        process = subprocess.Popen(host.command(*argv), **kwargs)
        self.processes.append(process)
        return process

    def remove(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        for host in self.hosts:
            kill_everything_in(host.namespace)
        for namespace in [host.namespace for host in self.hosts] + [self.switch]:
            # A process left in a namespace keeps it alive, not its name: deletion always succeeds.
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=60)


def pids_in(namespace: str) -> list[int]:
    """Every process whose network namespace is this one (daemons a started process left behind, such
    as a Ray node's raylet and workers): only processes this test started can be there."""
    listed = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True, timeout=60)
    return [int(word) for word in listed.stdout.split() if word.isdigit()]


def kill_everything_in(namespace: str) -> None:
    """SIGKILL every process in the namespace, and wait (up to 30 s) until none is left."""
    deadline = time.monotonic() + 30
    while (pids := pids_in(namespace)) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)


# Our namespaces: diary-<pid of the test process>-<tag>-<role>.
_OURS = re.compile(r"diary-(\d+)-[0-9a-f]{6}-(sw|h\d+)")


def remove_orphans() -> None:
    """Delete namespaces left by a test process that died without its teardown (killed by a signal)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=60).stdout
    for line in listed.splitlines():
        name = line.split(" ", 1)[0]
        found = _OURS.fullmatch(name)
        if found and not os.path.exists(f"/proc/{found.group(1)}"):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=60)


def make_hosts(count: int) -> Hosts:
    remove_orphans()
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
    subnet = f"10.{random.randint(16, 250)}.{random.randint(0, 255)}"
    switch = f"diary-{tag}-sw"
    made = Hosts(tag, switch, [])
    try:
        _ip("netns", "add", switch)
        _ip("-n", switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", switch, "link", "set", "br0", "up")
        for i in range(1, count + 1):
            host = Host(f"diary-{tag}-h{i}", f"{subnet}.{i}")
            _ip("netns", "add", host.namespace)
            made.hosts.append(host)
            # One end in the host, the other in the switch: made there directly, never in this namespace.
            _ip(
                "-n", switch, "link", "add", f"port{i}", "type", "veth", "peer", "name", DEVICE, "netns", host.namespace
            )
            _ip("-n", switch, "link", "set", f"port{i}", "master", "br0", "up")
            _ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", DEVICE)
            _ip("-n", host.namespace, "link", "set", DEVICE, "up")
            _ip("-n", host.namespace, "link", "set", "lo", "up")
    except BaseException:
        made.remove()
        raise
    return made
