"""Lightning's names, from `pytorch_lightning` or the unified `lightning` package, in one place."""

from __future__ import annotations

try:
    from lightning_fabric.loggers.logger import rank_zero_experiment
    from lightning_fabric.utilities.logger import _add_prefix, _convert_params, _sanitize_params
    from lightning_fabric.utilities.rank_zero import rank_zero_only
    from pytorch_lightning.loggers.logger import Logger
except ImportError:  # the unified `lightning` package
    from lightning.fabric.loggers.logger import rank_zero_experiment
    from lightning.fabric.utilities.logger import _add_prefix, _convert_params, _sanitize_params
    from lightning.fabric.utilities.rank_zero import rank_zero_only
    from lightning.pytorch.loggers.logger import Logger

__all__ = ["Logger", "_add_prefix", "_convert_params", "_sanitize_params", "rank_zero_experiment", "rank_zero_only"]
