"""Where a plugin writes each test's outcome (`$PEER_SUITES_RESULTS`, a JSON file), for the runner."""

from __future__ import annotations

import json
import os
from typing import Any

ENV = "PEER_SUITES_RESULTS"


class Recorder:
    """A pytest plugin object: the outcome of every test (a failure in setup, call or teardown fails it)."""

    def __init__(self, path: str, label: Any) -> None:
        self.path = path
        self.label = label  # nodeid -> the column a test counts in (e.g. the logger class), or None
        self.outcomes: dict[str, str] = {}

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.failed:
            self.outcomes[report.nodeid] = "failed"
        elif report.skipped and report.when in ("setup", "call"):
            self.outcomes.setdefault(report.nodeid, "skipped")
        elif report.when == "call" and report.passed:
            self.outcomes.setdefault(report.nodeid, "passed")

    def pytest_sessionfinish(self, session: Any) -> None:
        rows = [{"test": k, "outcome": v, "column": self.label(k)} for k, v in sorted(self.outcomes.items())]
        with open(self.path, "w") as f:
            json.dump(rows, f, indent=1)


def install(config: Any, label: Any) -> None:
    """Record outcomes into $PEER_SUITES_RESULTS when the runner asked for it (xdist: the controller only)."""
    path = os.environ.get(ENV)
    if path and not hasattr(config, "workerinput"):
        config.pluginmanager.register(Recorder(path, label), "peer-suites-recorder")
