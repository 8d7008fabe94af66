"""diary-integrations: an experiment tracker whose iterations form parent/child trees.

    from diary_integrations import initialize_database, create_project, with_iteration, ...

Names are loaded on first use, so `import diary_integrations` stays light (no SQLAlchemy, torch or
scikit-learn until something needs them).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "connect": "connection",
    "initialize_database": "connection",
    "get_tracker": "connection",
    "set_tracker": "connection",
    "LocalTracker": "tracker.local",
    "RemoteTracker": "client",
    "Tracker": "tracker.protocol",
    "IterationRun": "tracker.lifecycle",
    "describe_failure": "tracker.lifecycle",
    "capture_environment": "tracker.environment",
    "format_tree": "cli.tree",
    "to_frame": "frames",
    "search_frame": "frames",
    "sweep_frame": "frames",
}
for _module, _names in {
    "tracker.enums": ["ExperimentStatus", "IterationStatus", "ModelStage", "Result", "TagTarget", "ArtifactBackend"],
    "tracker.errors": ["DiaryError", "Unprocessable", "Conflict", "NotFound", "AuthError", "PermissionDenied",
                       "TransportError", "IterationEnded", "SchemaTooNew"],
    "tracker.records": ["Created", "User", "UserPermission", "Project", "Experiment", "Iteration", "Environment",
                        "Parameter", "Metric", "Tag", "Resource", "NewIteration", "IterationEnding",
                        "IterationPage", "Model", "ModelVersion", "ModelAlias"],
    "restore": ["restore_environment", "RestoredEnvironment"],
    "registry": ["load_model", "register_checkpoint", "register_estimator", "register_model_file"],
}.items():
    _LAZY.update(dict.fromkeys(_names, _module))

_DEFAULT_API = None


def _default_api_names() -> list[str]:
    global _DEFAULT_API
    if _DEFAULT_API is None:
        _DEFAULT_API = importlib.import_module(".default_api", __name__)
    return _DEFAULT_API.__all__


def _is_submodule(name: str) -> bool:
    here = os.path.dirname(__file__)
    return os.path.isfile(os.path.join(here, f"{name}.py")) or os.path.isfile(os.path.join(here, name, "__init__.py"))


def __getattr__(name: str) -> Any:
    if name == "__all__":
        # `from diary_integrations import *`, as a DearDiary script starts with `using DearDiary`; computed
        # on that first use so a plain import stays light.
        return sorted(set(_LAZY) | set(_default_api_names()))
    module = _LAZY.get(name)
    if module is None and _is_submodule(name):
        # `from . import writer` asks the package for the name before importing the submodule: answering
        # from default_api would import it (and the tracker's protocol and records) for nothing, a
        # noticeable part of a short training process's start.
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if module is not None:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
    elif not name.startswith("_") and name in _default_api_names():
        value = getattr(_DEFAULT_API, name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_default_api_names()))
