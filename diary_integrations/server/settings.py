"""Server configuration from `DIARY_*` environment variables and an optional `.env` file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ..tracker.enums import ArtifactBackend
from ..tracker.lifecycle import DEFAULT_LEASE_SECONDS

DEFAULT_JWT_SECRET = "diary-integrations-default-secret-change-me"
MIB = 1024 * 1024
MIN_JWT_SECRET_BYTES = 32


class ServerSettings(BaseSettings):
    """What `diary server` and `create_app` read; every field is `DIARY_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="DIARY_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(9000, ge=0, le=65535)
    database_url: str = "sqlite:///deardiary.db"
    jwt_secret: str = DEFAULT_JWT_SECRET
    enable_auth: bool = False
    token_ttl_seconds: int = Field(24 * 3600, gt=0)
    # No CORS unless origins are named: a web page elsewhere must not drive this server from a browser.
    cors_origins: Annotated[list[str], NoDecode] = []
    artifact_backend: ArtifactBackend = ArtifactBackend.INLINE
    artifact_root: Path = Path("deardiary_artifacts")
    # A RUNNING iteration whose heartbeat is older than this is reaped KILLED ("heartbeat lost"); clients
    # read the same variable and beat every lease/3.
    heartbeat_lease: float = Field(DEFAULT_LEASE_SECONDS, gt=0, allow_inf_nan=False)
    # Hardening (docs/decisions.md, "A team server you can put on a network").
    admin_password: str | None = Field(None, repr=False)
    # MLflow's clients send no heartbeat, only their writes: a run logged through MLflow's API is KILLED
    # ("heartbeat lost") after this long without a write (docs/decisions.md).
    mlflow_run_lease: float = Field(3600.0, gt=0, allow_inf_nan=False)
    # The project whose experiments MLflow's API shows (server/mlflow/mapping.py).
    mlflow_project: str = Field("mlflow", min_length=1, max_length=250)
    # Where MLflow's clients put the artifacts of the experiments they create, as MLflow's
    # `--default-artifact-root` (`<root>/<experiment id>`); None: the server's artifact proxy, diary's
    # resources (docs/decisions.md, issue 26).
    mlflow_artifact_root: str | None = Field(None, min_length=1)
    max_request_bytes: int = Field(32 * MIB, ge=MIB)
    login_window_seconds: float = Field(300.0, gt=0)
    login_max_failures_per_user: int = Field(10, ge=1)
    login_max_failures_per_address: int = Field(100, ge=1)
    login_concurrency: int = Field(2, ge=1)
    login_queue_seconds: float = Field(5.0, ge=0)
    # Back-pressure and outages (docs/decisions.md, issue 24): a worker serves 2 x db_pool_size requests
    # at once; others wait at most max_queue_seconds, at most max_in_flight held in all, else 503
    # SERVER_BUSY; a 503 (busy, or DATABASE_UNAVAILABLE) says Retry-After this.
    max_in_flight: int = Field(256, ge=1)
    max_queue_seconds: float = Field(0.5, gt=0, le=3600, allow_inf_nan=False)
    retry_after_seconds: float = Field(1.0, ge=1, le=3600, allow_inf_nan=False)
    # Database connections each worker keeps (and as many again in a burst), about the threads that use them.
    db_pool_size: int = Field(8, ge=1, le=1000)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        # "a, b" in the environment; a list when built in Python.
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("mlflow_artifact_root", mode="after")
    @classmethod
    def _root_as_uri(cls, value: str | None) -> str | None:
        # A bare path is a local folder: kept as its absolute file:// URI, as MLflow's clients read it.
        if value is None or "://" in value:
            return value
        return Path(value).expanduser().resolve().as_uri()

    def check(self) -> None:
        """Refuse a configuration that would be unsafe to serve."""
        if self.enable_auth and self.jwt_secret == DEFAULT_JWT_SECRET:
            raise ValueError(
                "DIARY_ENABLE_AUTH is on but DIARY_JWT_SECRET is the default; set a secret of your own "
                "(anyone could forge tokens with the default one)"
            )
        if self.enable_auth and len(self.jwt_secret.encode()) < MIN_JWT_SECRET_BYTES:
            raise ValueError(
                f"DIARY_JWT_SECRET is {len(self.jwt_secret.encode())} bytes; with auth on it must be at least "
                f"{MIN_JWT_SECRET_BYTES} bytes (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        if self.admin_password is not None and not self.admin_password:
            raise ValueError("DIARY_ADMIN_PASSWORD is set but empty")
        if "*" in self.cors_origins and self.enable_auth:
            raise ValueError("DIARY_CORS_ORIGINS='*' is refused with auth on; name the origins that may call")

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
