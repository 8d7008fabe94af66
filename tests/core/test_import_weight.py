"""A callback integration's import is part of every short training script's start (issue 28's 1.03x
budget): it brings the run's machinery, not the tracker's read side, the journal of a server client, the
storage layer or NVML."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("diary_integrations.default_api", "diary_integrations.tracker.protocol",
         "diary_integrations.tracker.records", "diary_integrations.client.journal", "sqlalchemy", "pynvml")


@pytest.mark.parametrize(("module", "framework"), [("diary_integrations.callback_run", None),
                                                   ("diary_integrations.lightgbm", "lightgbm"),
                                                   ("diary_integrations.xgboost", "xgboost")])
def test_importing_a_callback_integration_leaves_the_heavy_modules_alone(module, framework):
    if framework:
        pytest.importorskip(framework)
    code = f"import sys, {module}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
