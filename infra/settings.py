"""Runtime configuration: environment variables prefixed `PANTHEON_`, validated once at start."""

from __future__ import annotations

import ipaddress
import os
from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
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
    log_content: bool = Field(
        default=False,
        description="log prompts, messages, variable values and exception texts (debugging only)",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    metrics_token: SecretStr | None = Field(
        default=None,
        description="when set, GET /metrics needs `Authorization: Bearer <token>` (else 401)",
    )
    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="how long a request waits for a free PostgreSQL connection before "
        "SERVICE_UNAVAILABLE",
    )
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)
    max_request_bytes: int = Field(default=1_000_000, ge=1_024)
    max_query_depth: int = Field(default=12, ge=2)
    max_aliases: int = Field(default=30, ge=1)
    max_query_tokens: int = Field(default=2_000, ge=50)
    max_query_cost: int = Field(
        default=5_000,
        ge=1,
        description="static cost an operation may have (docs/query_cost.md); more is "
        "QUERY_TOO_COMPLEX",
    )
    operation_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="an operation still awaiting after this long ends with TIMEOUT "
        "(runTurn waiting for completion and subscriptions are exempt)",
    )
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
    max_websocket_message_bytes: int = Field(
        default=65_536,
        ge=1_024,
        description="a larger inbound WebSocket message closes the socket (1009)",
    )
    max_websockets_per_user: int = Field(
        default=10, ge=1, description="open sockets per user; the next is closed with 1008"
    )
    cors_origins: str = Field(
        default="",
        description="comma-separated origins allowed to call the API from a browser; empty: none",
    )
    limit_concurrency: int = Field(
        default=1_000,
        ge=1,
        description="connections (HTTP and WebSocket) one `serve` process holds before 503",
    )
    keep_alive_seconds: int = Field(
        default=5, ge=1, description="an idle HTTP keep-alive connection is closed after this"
    )
    ws_ping_interval_seconds: float = Field(
        default=20.0, gt=0, description="how often `serve` pings each WebSocket"
    )
    ws_ping_timeout_seconds: float = Field(
        default=20.0, gt=0, description="a WebSocket not answering a ping within this is closed"
    )
    routing_billing_category: BillingCategory = Field(
        default=BillingCategory.UNMETERED,
        description="F46: UNMETERED (locked decision) or SYSTEM_OVERHEAD (Option A)",
    )
    summary_billing_category: BillingCategory = BillingCategory.SYSTEM_OVERHEAD
    summary_threshold: int = Field(
        default=8, ge=1, description="finished turns since the last summary that make one due"
    )
    # Rate limits (docs/rate_limits.md): per minute, sliding window; 0 turns one off.
    rate_limit_requests_per_minute: int = Field(
        default=1_200, ge=0, description="GraphQL operations (HTTP, WebSocket subscribe) per user"
    )
    rate_limit_turns_per_minute: int = Field(
        default=120, ge=0, description="turns admitted per user"
    )
    rate_limit_tokens_per_minute: int = Field(
        default=2_000_000, ge=0, description="provider tokens per user (estimated, then settled)"
    )
    rate_limit_auth_failures_per_minute: int = Field(
        default=20, ge=0, description="invalid tokens per client address before it is refused"
    )
    trusted_proxies: str = Field(
        default="",
        description="comma-separated proxy IPs/CIDRs whose X-Forwarded-For names the client",
    )
    default_expected_completion_tokens: int = Field(
        default=256,
        ge=1,
        description="completion tokens budget admission expects of a model with no "
        "provider-reported calls yet in this process",
    )
    min_output_tokens: int = Field(
        default=16,
        ge=1,
        description="a call whose budget-capped max_tokens falls below this is refused "
        "with BUDGET_EXCEEDED before anything is sent",
    )
    budget_warning_fraction: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="a turn leaving its user at or above this fraction of the monthly budget "
        "emits BudgetWarning",
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

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ValueError(f"{part!r} is not an IP address or CIDR network") from None
        return value

    @property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        parts = filter(None, (p.strip() for p in self.trusted_proxies.split(",")))
        return tuple(ipaddress.ip_network(part, strict=False) for part in parts)

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> Settings:
        if self.turn_heartbeat_seconds * 3 > self.turn_lease_seconds:
            raise ValueError(
                "PANTHEON_TURN_HEARTBEAT_SECONDS must be at most a third of "
                "PANTHEON_TURN_LEASE_SECONDS, "
                "so one missed renewal never loses a live turn"
            )
        return self

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        for origin in _split_origins(value):
            if origin == "*":
                continue
            scheme, sep, rest = origin.partition("://")
            if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
                raise ValueError(f"{origin!r} is not an origin like https://app.example.com")
        return value

    @property
    def cors_origin_list(self) -> list[str]:
        """`PANTHEON_CORS_ORIGINS` split here (a list-typed setting would be JSON-decoded)."""
        return _split_origins(self.cors_origins)

    @property
    def embedded(self) -> bool:
        """True when running on the embedded defaults (no database configured)."""
        return self.database_url is None

    @property
    def effective_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'pantheon.db'}"


def _split_origins(value: str) -> list[str]:
    return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]


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
