"""scikit-learn integration: `DiaryCallback` for searches on scikit-learn >= 1.9 (the experimental
`sklearn.callback` API) and `tracked` / `tracked_cross_validate` for any version.

    cb = DiaryCallback(project="Fraud detection", experiment="Decision-tree sweep", uri="sqlite:///runs.db")
    search.set_callbacks(cb); search.fit(X, y); cb.driver_iteration_id
"""

from __future__ import annotations

from ._writer import TrackingWarning
from .callback import DiaryCallback
from .fallback import TrackedCVResults, callbacks_supported, tracked, tracked_cross_validate

__all__ = [
    "DiaryCallback",
    "TrackedCVResults",
    "TrackingWarning",
    "callbacks_supported",
    "tracked",
    "tracked_cross_validate",
]
