"""pytest plugin: Lightning's `tests_pytorch/loggers/test_all.py` with DiaryLogger added to its logger list.

The tests import the unified `lightning` package; when only `pytorch_lightning` is installed the runner
puts `lightning_alias/` on the path (see there).
Only the tests parametrized by `logger_class` run, each counted under its logger's name.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import pytest

from diary_integrations.lightning import DiaryLogger as _DiaryLogger

from .results import install

TESTS = ("test_loggers_fit_test_all", "test_loggers_pickle_all", "test_logger_initialization")


class DiaryLogger(_DiaryLogger):
    """DiaryLogger as the suite builds a logger: from `save_dir` alone (a SQLite file in a temp dir)."""

    def __init__(self, save_dir: str | None = None, **kwargs: Any) -> None:
        uri = os.environ.get("PEER_SUITES_DIARY_DB") or os.path.join(tempfile.mkdtemp(), "diary.db")
        super().__init__("lightning-tests", "test_all", uri, save_dir=save_dir, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    install(config, _column)


def _column(nodeid: str) -> str:
    return nodeid.rsplit("[", 1)[-1].rstrip("]") if "[" in nodeid else nodeid


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: Any, name: str, obj: Any) -> Any:
    """Add DiaryLogger to the `logger_class` parametrization of the three tests that take any logger."""
    if name not in TESTS:
        return None
    marks = getattr(obj, "pytestmark", [])
    for n, mark in enumerate(marks):
        if mark.name == "parametrize" and mark.args and mark.args[0] == "logger_class":
            values = [*mark.args[1], DiaryLogger]
            marks[n] = pytest.mark.parametrize("logger_class", values, ids=lambda c: c.__name__).mark
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep = [i for i in items if getattr(i, "originalname", None) in TESTS]
    config.hook.pytest_deselected(items=[i for i in items if i not in keep])
    items[:] = keep
