"""Runtime configuration: environment variables prefixed `PANTHEON_`, validated once at start."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.enums import BillingCategory

ENV_PREFIX = "PANTHEON_"
DEFAULT_CATALOG = Path(__file__).resolve().parent / "catalog" / "default.toml"


def default_data_dir() -> Path:
    """One place every command agrees on, whatever the current directory."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "pantheon"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class Settings(BaseSettings):
    """Every knob of the service; the README's configuration table mirrors this class."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    database_url: str | None = Field(
        default=None, description="SQLAlchemy async URL; unset = the embedded SQLite file"
    )
    data_dir: Path = Field(default_factory=default_data_dir)
    redis_url: str | None = Field(default=None, description="unset = in-memory events")
    redis_key_prefix: str = Field(
        default="pantheon", min_length=1, description="prefix of every Redis key and channel"
    )
    redis_stream_max_length: int = Field(
        default=10_000, ge=100, description="approximate cap of each turn/session Redis stream"
    )
    catalog_file: Path = DEFAULT_CATALOG
    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.TEXT
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)
    max_request_bytes: int = Field(default=1_000_000, ge=1_024)
    max_query_depth: int = Field(default=12, ge=2)
    max_aliases: int = Field(default=30, ge=1)
    max_query_tokens: int = Field(default=2_000, ge=50)
    default_page_size: int = Field(default=20, ge=1)
    max_page_size: int = Field(default=100, ge=1)
    max_title_length: int = Field(default=200, ge=1, le=500)  # the title column holds 500
    max_roster_size: int = Field(default=12, ge=1)
    max_message_chars: int = Field(default=32_000, ge=1)
    max_agents_per_turn: int = Field(default=8, ge=1)
    manager_max_agents: int = Field(default=3, ge=1)
    max_running_turns_per_user: int = Field(default=4, ge=1)
    turn_lease_seconds: float = Field(default=30.0, gt=0)
    turn_heartbeat_seconds: float = Field(default=2.0, gt=0)
    recovery_interval_seconds: float = Field(default=10.0, gt=0)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    event_retention_seconds: float = Field(default=900.0, gt=0)
    subscriber_buffer: int = Field(
        default=256, ge=1, description="events a subscriber may lag behind before SLOW_CONSUMER"
    )
    max_subscriptions_per_connection: int = Field(default=20, ge=1)
    routing_billing_category: BillingCategory = Field(
        default=BillingCategory.UNMETERED,
        description="F46: UNMETERED (locked decision) or SYSTEM_OVERHEAD (Option A)",
    )
    summary_billing_category: BillingCategory = BillingCategory.SYSTEM_OVERHEAD
    summary_threshold: int = Field(
        default=8, ge=1, description="finished turns since the last summary that make one due"
    )

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return upper

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite:///")):
            if value.rstrip("/").endswith(":memory:"):
                raise ValueError("an in-memory SQLite database is private to each connection")
            return value
        raise ValueError("must start with postgresql+asyncpg:// or sqlite+aiosqlite:///")

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> Settings:
        if self.turn_heartbeat_seconds * 3 > self.turn_lease_seconds:
            raise ValueError(
                "PANTHEON_TURN_HEARTBEAT_SECONDS must be at most a third of "
                "PANTHEON_TURN_LEASE_SECONDS, "
                "so one missed renewal never loses a live turn"
            )
        return self

    @property
    def embedded(self) -> bool:
        """True when running on the embedded defaults (no database configured)."""
        return self.database_url is None

    @property
    def effective_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'pantheon.db'}"


class SettingsError(Exception):
    """A setting that cannot be used; its message is one line naming the variable."""


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        if not first["loc"]:  # a rule across settings; its message names the variables
            raise SettingsError(message) from None
        raise SettingsError(f"{ENV_PREFIX}{str(first['loc'][0]).upper()}: {message}") from None
