"""How the integrations report a tracking failure without raising: tracking must never break a fit.

Shared by the Lightning logger and the scikit-learn integration (both re-export `TrackingWarning`).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Any

from .tracker.errors import one_line

log = logging.getLogger("diary_integrations")


_announced: set[tuple[int, str]] = set()


def shown_uri(url: str) -> str:
    """A tracker's URL as a user would type it: a SQLite file relative to the working directory."""
    if not url.startswith("sqlite:///"):
        return url
    path = url[len("sqlite:///"):]
    relative = os.path.relpath(path) if path else path
    return relative if not relative.startswith("..") else path


def announce(tracker: Any, what: str) -> None:
    """Say in one line (stderr, once per process and database) where a run is being tracked and how to
    look at it, so that nobody has to guess which file an integration wrote into."""
    url = str(getattr(tracker, "url", ""))
    key = (os.getpid(), url)
    if key in _announced:
        return
    _announced.add(key)
    where = shown_uri(url)
    print(f"diary: {what} tracked in {where} (to look: diary ui {where})", file=sys.stderr, flush=True)


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
