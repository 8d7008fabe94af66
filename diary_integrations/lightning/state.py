"""What the logger's helper modules (opening, ranks, metrics, params, checkpoints, system, ending,
process_state) read and set on a DiaryLogger, as a Protocol: they depend on this, and logger.py depends
on them, never the other way round. DiaryLogger is the one class that has this shape."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Protocol


class LoggerState(Protocol):
    """A DiaryLogger as its helpers see it: its options, the run it writes to and this process's state."""

    __dict__: dict[str, Any]

    # Options, as given to DiaryLogger (checked by options.py).
    _version: int | None
    _resume: str
    _run_key: str | None
    _parent_iteration_id: int | None
    _per_rank: bool
    _log_model: bool | str
    _register_as: str | None
    _notes: str
    _save_dir: str | None
    _background: bool
    _batch_size: int
    _max_pending_batches: int
    _flush_interval: float
    _settle_timeout: float
    _write_retries: int
    _system_metrics: bool
    _system_metrics_interval: float

    # The run: the tracker, the experiment and the iterations this logger writes to.
    _tracker: Any
    _own_tracker: bool
    _experiment_id: int | None
    _run_id: int | None
    _rank_id: int | None
    _owns_run: bool
    _synced: bool
    _resumed_from: str | None

    # This process's state (process_state.reset builds it, a pickled copy rebuilds it).
    _writer: Any
    _writing: bool
    _targets: tuple[int, ...]
    _ended_ok: set[int]
    _known_keys: set[str]
    _next_step: dict[str, int]
    _stored_last: dict[tuple[int, str], int]
    _checkpoint_callback: Any
    _stored_checkpoints: dict[Any, int]
    _reported_dropped: int
    _unfinished_pid: int | None
    _opener: Any
    _early: list[tuple[Mapping[str, Any], int | None, float]]
    _early_params: dict[str, Any]
    _journaled_params: int
    _flush_next_log: bool
    _connecting: threading.Lock
    _sampling: threading.Lock
    _sampler: Any

    @property
    def tracker(self) -> Any: ...

    @property
    def log_dir(self) -> str: ...

    @property
    def dropped(self) -> int: ...

    def _resolve_experiment(self) -> int: ...

    def _open_run(self) -> None: ...

    def _open_rank_child(self, rank: int) -> int: ...

    def _checkpoint_dir_for(self, iteration_id: int) -> str: ...

    def _open_in_background(self) -> bool: ...

    def _settle_opening(self, *, raise_failure: bool, wait: bool = True) -> bool: ...

    def _reopen(self) -> None: ...

    def _mark_unfinished(self) -> None: ...
