"""The relational model. Alembic migrations must produce exactly these tables (a test checks it).

Conventions: UUID keys, `UTCDateTime` timestamps set in Python, enums stored as strings with a
CHECK constraint (new values need no ALTER TYPE), money as integer nano-USD (1e-9 USD).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from domain.enums import (
    AgentMessageStatus,
    BillingCategory,
    CallKind,
    Role,
    TokenSource,
    TurnMode,
    TurnStatus,
)
from infra.db.types import UTCDateTime, metadata, utcnow


def str_enum(enum: type[StrEnum], name: str) -> Enum:
    return Enum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = metadata
    type_annotation_map = {datetime: UTCDateTime(), uuid.UUID: Uuid(), dict[str, Any]: JSON()}


def uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(primary_key=True, default=uuid.uuid4)


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = uuid_pk()
    handle: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[Role] = mapped_column(str_enum(Role, "role"))
    monthly_budget_nano: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (Index(None, "created_at", "id"),)


class ApiTokenRow(Base):
    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    display_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class ModelRow(Base):
    __tablename__ = "models"

    id: Mapped[uuid.UUID] = uuid_pk()
    alias: Mapped[str] = mapped_column(String(64), unique=True)
    provider: Mapped[str] = mapped_column(String(64))
    provider_model: Mapped[str] = mapped_column(String(128))
    input_nano_per_mtok: Mapped[int | None] = mapped_column(BigInteger)
    output_nano_per_mtok: Mapped[int | None] = mapped_column(BigInteger)
    max_output_tokens: Mapped[int] = mapped_column(Integer)
    context_window: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AgentRow(Base):
    __tablename__ = "agents"

    id: Mapped[uuid.UUID] = uuid_pk()
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    system_prompt: Mapped[str] = mapped_column(Text)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id"), index=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SessionRow(Base):
    __tablename__ = "sessions"

    id: Mapped[uuid.UUID] = uuid_pk()
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(500))
    default_mode: Mapped[TurnMode] = mapped_column(str_enum(TurnMode, "default_mode"))
    turn_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[datetime | None]

    # Keyset pagination of an owner's sessions, newest first.
    __table_args__ = (Index(None, "owner_id", "created_at", "id"),)


class SessionAgentRow(Base):
    """The ordered roster of a session; position 1 is the default agent when enabled."""

    __tablename__ = "session_agents"

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id"), index=True)

    __table_args__ = (UniqueConstraint("session_id", "agent_id"),)


class TurnRow(Base):
    __tablename__ = "turns"

    id: Mapped[uuid.UUID] = uuid_pk()
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sessions.id"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    mode: Mapped[TurnMode] = mapped_column(str_enum(TurnMode, "mode"))
    status: Mapped[TurnStatus] = mapped_column(str_enum(TurnStatus, "status"))
    user_message: Mapped[str] = mapped_column(Text)
    assistant_output: Mapped[str] = mapped_column(Text, default="")
    routing: Mapped[dict[str, Any] | None]
    context_audit: Mapped[dict[str, Any] | None]
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    runner_id: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    cancel_requested_at: Mapped[datetime | None]
    summary_triggered: Mapped[bool] = mapped_column(Boolean, default=False)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    # The budget reservation of a running turn (nano-USD); 0 once settled at its close.
    reserved_nano: Mapped[int] = mapped_column(BigInteger, default=0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("session_id", "index"),
        UniqueConstraint("user_id", "idempotency_key"),
        # Unique where RUNNING: at most one running turn per session, enforced by the database.
        Index(
            None,
            "session_id",
            unique=True,
            sqlite_where=text("status = 'RUNNING'"),
            postgresql_where=text("status = 'RUNNING'"),
        ),
    )


class AgentMessageRow(Base):
    __tablename__ = "agent_messages"

    id: Mapped[uuid.UUID] = uuid_pk()
    turn_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("turns.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[AgentMessageStatus] = mapped_column(str_enum(AgentMessageStatus, "status"))
    content: Mapped[str] = mapped_column(Text, default="")
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    model_alias: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    __table_args__ = (UniqueConstraint("turn_id", "position"),)


class SessionSummaryRow(Base):
    __tablename__ = "session_summaries"

    id: Mapped[uuid.UUID] = uuid_pk()
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    turn_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("turns.id"), index=True)
    covers_from_turn: Mapped[int] = mapped_column(Integer)
    covers_through_turn: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    structure: Mapped[dict[str, Any]]
    generation_used_fallback: Mapped[bool] = mapped_column(Boolean, default=False)
    extraction_used_fallback: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    # Two summaries never cover the same range of a session.
    __table_args__ = (
        UniqueConstraint("session_id", "covers_from_turn"),
        UniqueConstraint("session_id", "covers_through_turn"),
    )


class UsageRecordRow(Base):
    """One LLM call attempt that reached a provider, priced at call time (never rewritten)."""

    __tablename__ = "usage_records"

    id: Mapped[uuid.UUID] = uuid_pk()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    session_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("sessions.id"), index=True)
    turn_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("turns.id"))
    agent_message_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("agent_messages.id"), index=True
    )
    summary_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("session_summaries.id"), index=True
    )
    agent_key: Mapped[str | None] = mapped_column(String(64))
    call_kind: Mapped[CallKind] = mapped_column(str_enum(CallKind, "call_kind"))
    billing_category: Mapped[BillingCategory] = mapped_column(
        str_enum(BillingCategory, "billing_category")
    )
    position: Mapped[int] = mapped_column(Integer, default=0)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    provider: Mapped[str] = mapped_column(String(64))
    model_alias: Mapped[str] = mapped_column(String(64))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(Integer, default=0)
    token_source: Mapped[TokenSource] = mapped_column(str_enum(TokenSource, "token_source"))
    unpriced: Mapped[bool] = mapped_column(Boolean, default=False)
    input_nano_per_mtok: Mapped[int | None] = mapped_column(BigInteger)
    output_nano_per_mtok: Mapped[int | None] = mapped_column(BigInteger)
    cost_nano: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    succeeded: Mapped[bool] = mapped_column(Boolean)
    error_code: Mapped[str | None] = mapped_column(String(64))
    provider_request_id: Mapped[str | None] = mapped_column(String(128))
    # The vendor's model id at call time (reconciliation with provider exports); null on rows
    # written before migration 0003.
    provider_model: Mapped[str | None] = mapped_column(String(128))
    # Written by recovery for a call a dead runner had in flight (estimated, not observed).
    recovered: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        # Our own attempt key; the provider's request id is never unique (servers reuse them).
        UniqueConstraint("turn_id", "call_kind", "position", "attempt"),
        Index(None, "user_id", "created_at"),
        Index(None, "created_at"),
        Index(None, "turn_id"),
        # Cost reports (docs/cost_reports.md): a time range, every groupable dimension and every
        # summed column, so a report can be answered from the index alone (an index-only scan).
        # Named explicitly: the convention's name (all eleven columns) exceeds PostgreSQL's 63.
        Index(
            "ix_usage_records_cost_report",
            "created_at",
            "user_id",
            "agent_key",
            "model_alias",
            "call_kind",
            "billing_category",
            "unpriced",
            "token_source",
            "prompt_tokens",
            "completion_tokens",
            "cost_nano",
        ),
    )


class TurnEventRow(Base):
    """The outbox: durable turn events, written in the unit of work of the fact they describe."""

    __tablename__ = "turn_events"

    id: Mapped[uuid.UUID] = uuid_pk()
    turn_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("turns.id", ondelete="CASCADE"))
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    sequence: Mapped[int] = mapped_column(Integer)
    event_type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("turn_id", "sequence"),)
