"""The read-only web dashboard: `diary ui sweep.db`, or `/ui/` of the tracking server."""

from __future__ import annotations

from .app import create_dashboard, mount_dashboard

__all__ = ["create_dashboard", "mount_dashboard"]
