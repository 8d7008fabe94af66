"""`lightning.pytorch` / `lightning.fabric` as aliases of the installed `pytorch_lightning` and
`lightning_fabric` (the same code under the unified package's names, as Lightning's own release converts
its tests). Only on the path the peer-suites runner gives Lightning's tests (spawned workers included),
and only when the unified `lightning` package is not installed."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from typing import Any

ALIASES = {"lightning.pytorch": "pytorch_lightning", "lightning.fabric": "lightning_fabric"}


def _real(name: str) -> str | None:
    for alias, real in ALIASES.items():
        if name == alias or name.startswith(alias + "."):
            return real + name[len(alias):]
    return None


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """`lightning.pytorch.x` is the module `pytorch_lightning.x`: one module object under two names."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        return None if _real(fullname) is None else importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec: Any) -> types.ModuleType:
        return importlib.import_module(_real(spec.name))  # type: ignore[arg-type]

    def exec_module(self, module: types.ModuleType) -> None:
        pass


sys.meta_path.insert(0, _Alias())
