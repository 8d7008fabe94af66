"""How the integrations report a tracking failure without raising: tracking must never break a fit.

Shared by the Lightning logger and the scikit-learn integration (both re-export `TrackingWarning`).
"""

from __future__ import annotations

import logging
import warnings

from .tracker.lifecycle import one_line

log = logging.getLogger("diary_integrations")


class TrackingWarning(UserWarning):
    """Tracking failed for part of a run; the training or fit itself was not changed."""


def warn_tracking(
    what: str,
    error: BaseException | str | None = None,
    *,
    logger: logging.Logger = log,
    stacklevel: int = 3,
    quiet: bool = False,
) -> None:
    """One line for the user: what failed and why. The traceback (a transport error chains three
    levels of httpx internals, ~80 lines) goes to the log only when DEBUG is enabled. `quiet` only
    logs: for a failure that follows one already warned about."""
    reason = "" if error is None else f": {one_line(error) if isinstance(error, BaseException) else error}"
    message = f"diary: {what}{reason}"
    trace = isinstance(error, BaseException) and logger.isEnabledFor(logging.DEBUG)
    # INFO, not WARNING: with logging unconfigured Python's last-resort handler would print the same
    # line a second time next to the warning.
    logger.info("%s", message, exc_info=error if trace else None)
    if not quiet:
        warnings.warn(message, TrackingWarning, stacklevel=stacklevel + 1)
