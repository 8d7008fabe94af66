"""The `diary` command (`command`) and what it prints: `listing` (`diary ls`, `diary show`, `diary search`),
`tree` (`diary tree`, whose status glyphs and durations the dashboard shares) and `mlflow_import`
(`diary import mlflow`). `python -m diary_integrations.cli` runs the command as `diary` does."""

from __future__ import annotations

from .command import build_parser, main

__all__ = ["build_parser", "main"]
