"""Server configuration from `DIARY_*` environment variables and an optional `.env` file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ..tracker.enums import ArtifactBackend
from ..tracker.lifecycle import DEFAULT_LEASE_SECONDS

DEFAULT_JWT_SECRET = "diary-integrations-default-secret-change-me"


class ServerSettings(BaseSettings):
    """What `diary server` and `create_app` read; every field is `DIARY_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="DIARY_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(9000, ge=0, le=65535)
    database_url: str = "sqlite:///deardiary.db"
    jwt_secret: str = DEFAULT_JWT_SECRET
    enable_auth: bool = False
    token_ttl_seconds: int = Field(24 * 3600, gt=0)
    cors_origins: Annotated[list[str], NoDecode] = ["*"]
    artifact_backend: ArtifactBackend = ArtifactBackend.INLINE
    artifact_root: Path = Path("deardiary_artifacts")
    # A RUNNING iteration whose heartbeat is older than this is reaped KILLED ("heartbeat lost"); clients
    # read the same variable and beat every lease/3.
    heartbeat_lease: float = Field(DEFAULT_LEASE_SECONDS, gt=0, allow_inf_nan=False)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        # "a, b" in the environment; a list when built in Python.
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def check(self) -> None:
        """Refuse a configuration that would be unsafe to serve."""
        if self.enable_auth and self.jwt_secret == DEFAULT_JWT_SECRET:
            raise ValueError(
                "DIARY_ENABLE_AUTH is on but DIARY_JWT_SECRET is the default; set a secret of your own "
                "(anyone could forge tokens with the default one)"
            )

    @property
    def reap_every(self) -> float:
        """How often the server's reaper looks for expired leases (seconds): every few seconds, and at
        least three times per lease."""
        return min(5.0, self.heartbeat_lease / 3)

    @property
    def tracker_artifact_root(self) -> str | None:
        """The LocalTracker artifact root: None keeps bytes inline in the database."""
        if self.artifact_backend is ArtifactBackend.FILESYSTEM:
            return str(self.artifact_root.expanduser().resolve())
        return None
