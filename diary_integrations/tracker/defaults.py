"""Defaults shared without importing SQLAlchemy."""

DEFAULT_URI = "sqlite:///deardiary.db"
