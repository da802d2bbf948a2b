"""Initial schema: users, tokens, catalog, sessions, turns, messages, usage, summaries, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-24 02:46:04.972240
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("provider_model", sa.String(length=128), nullable=False),
        sa.Column("input_nano_per_mtok", sa.BigInteger(), nullable=True),
        sa.Column("output_nano_per_mtok", sa.BigInteger(), nullable=True),
        sa.Column("max_output_tokens", sa.Integer(), nullable=False),
        sa.Column("context_window", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("alias", name=op.f("uq_models_alias")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("handle", sa.String(length=64), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "USER", "ADMIN", name="role", native_enum=False, create_constraint=True, length=32
            ),
            nullable=False,
        ),
        sa.Column("monthly_budget_nano", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("handle", name=op.f("uq_users_handle")),
    )
    op.create_index(op.f("ix_users_created_at_id"), "users", ["created_at", "id"], unique=False)
    op.create_table(
        "agents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("system_prompt", sa.Text(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_agents_model_id_models")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.UniqueConstraint("key", name=op.f("uq_agents_key")),
    )
    op.create_index(op.f("ix_agents_model_id"), "agents", ["model_id"], unique=False)
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("display_prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"], unique=False)
    op.create_table(
        "sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column(
            "default_mode",
            sa.Enum(
                "MANUAL",
                "ORCHESTRATOR",
                "ROUNDTABLE",
                name="default_mode",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("turn_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_sessions_owner_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
    )
    op.create_index(
        op.f("ix_sessions_owner_id_created_at_id"),
        "sessions",
        ["owner_id", "created_at", "id"],
        unique=False,
    )
    op.create_table(
        "session_agents",
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_session_agents_agent_id_agents")
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_session_agents_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", "position", name=op.f("pk_session_agents")),
        sa.UniqueConstraint(
            "session_id", "agent_id", name=op.f("uq_session_agents_session_id_agent_id")
        ),
    )
    op.create_index(
        op.f("ix_session_agents_agent_id"), "session_agents", ["agent_id"], unique=False
    )
    op.create_table(
        "turns",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column(
            "mode",
            sa.Enum(
                "MANUAL",
                "ORCHESTRATOR",
                "ROUNDTABLE",
                name="mode",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "RUNNING",
                "COMPLETED",
                "PARTIAL",
                "FAILED",
                "CANCELLED",
                name="status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("user_message", sa.Text(), nullable=False),
        sa.Column("assistant_output", sa.Text(), nullable=False),
        sa.Column("routing", sa.JSON(), nullable=True),
        sa.Column("context_audit", sa.JSON(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("runner_id", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("summary_triggered", sa.Boolean(), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("reserved_nano", sa.BigInteger(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name=op.f("fk_turns_session_id_sessions")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_turns_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_turns")),
        sa.UniqueConstraint("session_id", "index", name=op.f("uq_turns_session_id_index")),
        sa.UniqueConstraint(
            "user_id", "idempotency_key", name=op.f("uq_turns_user_id_idempotency_key")
        ),
    )
    op.create_index(op.f("ix_turns_user_id"), "turns", ["user_id"], unique=False)
    op.create_index(
        op.f("ix_turns_session_id"),
        "turns",
        ["session_id"],
        unique=True,
        sqlite_where=sa.text("status = 'RUNNING'"),
        postgresql_where=sa.text("status = 'RUNNING'"),
    )
    op.create_table(
        "agent_messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("turn_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "COMPLETED",
                "FAILED",
                "CANCELLED",
                name="status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("model_alias", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_agent_messages_agent_id_agents")
        ),
        sa.ForeignKeyConstraint(
            ["turn_id"],
            ["turns.id"],
            name=op.f("fk_agent_messages_turn_id_turns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_messages")),
        sa.UniqueConstraint("turn_id", "position", name=op.f("uq_agent_messages_turn_id_position")),
    )
    op.create_index(
        op.f("ix_agent_messages_agent_id"), "agent_messages", ["agent_id"], unique=False
    )
    op.create_table(
        "session_summaries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("turn_id", sa.Uuid(), nullable=True),
        sa.Column("covers_from_turn", sa.Integer(), nullable=False),
        sa.Column("covers_through_turn", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("structure", sa.JSON(), nullable=False),
        sa.Column("generation_used_fallback", sa.Boolean(), nullable=False),
        sa.Column("extraction_used_fallback", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_session_summaries_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["turn_id"], ["turns.id"], name=op.f("fk_session_summaries_turn_id_turns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_summaries")),
        sa.UniqueConstraint(
            "session_id",
            "covers_from_turn",
            name=op.f("uq_session_summaries_session_id_covers_from_turn"),
        ),
        sa.UniqueConstraint(
            "session_id",
            "covers_through_turn",
            name=op.f("uq_session_summaries_session_id_covers_through_turn"),
        ),
    )
    op.create_index(
        op.f("ix_session_summaries_turn_id"), "session_summaries", ["turn_id"], unique=False
    )
    op.create_table(
        "turn_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("turn_id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_turn_events_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["turn_id"], ["turns.id"], name=op.f("fk_turn_events_turn_id_turns"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_turn_events")),
        sa.UniqueConstraint("turn_id", "sequence", name=op.f("uq_turn_events_turn_id_sequence")),
    )
    op.create_index(op.f("ix_turn_events_session_id"), "turn_events", ["session_id"], unique=False)
    op.create_table(
        "usage_records",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("turn_id", sa.Uuid(), nullable=True),
        sa.Column("agent_message_id", sa.Uuid(), nullable=True),
        sa.Column("summary_id", sa.Uuid(), nullable=True),
        sa.Column("agent_key", sa.String(length=64), nullable=True),
        sa.Column(
            "call_kind",
            sa.Enum(
                "AGENT_RESPONSE",
                "MANAGER_ROUTING",
                "SUMMARY_GENERATION",
                "SUMMARY_EXTRACTION",
                name="call_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "billing_category",
            sa.Enum(
                "USER_BILLABLE",
                "SYSTEM_OVERHEAD",
                "UNMETERED",
                name="billing_category",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model_alias", sa.String(length=64), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), nullable=False),
        sa.Column("reasoning_tokens", sa.Integer(), nullable=False),
        sa.Column(
            "token_source",
            sa.Enum(
                "PROVIDER",
                "ESTIMATED",
                name="token_source",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("unpriced", sa.Boolean(), nullable=False),
        sa.Column("input_nano_per_mtok", sa.BigInteger(), nullable=True),
        sa.Column("output_nano_per_mtok", sa.BigInteger(), nullable=True),
        sa.Column("cost_nano", sa.BigInteger(), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("provider_request_id", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_message_id"],
            ["agent_messages.id"],
            name=op.f("fk_usage_records_agent_message_id_agent_messages"),
        ),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name=op.f("fk_usage_records_session_id_sessions")
        ),
        sa.ForeignKeyConstraint(
            ["summary_id"],
            ["session_summaries.id"],
            name=op.f("fk_usage_records_summary_id_session_summaries"),
        ),
        sa.ForeignKeyConstraint(
            ["turn_id"], ["turns.id"], name=op.f("fk_usage_records_turn_id_turns")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_usage_records_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_records")),
        sa.UniqueConstraint(
            "turn_id",
            "call_kind",
            "position",
            "attempt",
            name=op.f("uq_usage_records_turn_id_call_kind_position_attempt"),
        ),
    )
    op.create_index(
        op.f("ix_usage_records_agent_message_id"),
        "usage_records",
        ["agent_message_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_usage_records_created_at"), "usage_records", ["created_at"], unique=False
    )
    op.create_index(
        op.f("ix_usage_records_session_id"), "usage_records", ["session_id"], unique=False
    )
    op.create_index(
        op.f("ix_usage_records_summary_id"), "usage_records", ["summary_id"], unique=False
    )
    op.create_index(op.f("ix_usage_records_turn_id"), "usage_records", ["turn_id"], unique=False)
    op.create_index(
        op.f("ix_usage_records_user_id_created_at"),
        "usage_records",
        ["user_id", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_usage_records_user_id_created_at"), table_name="usage_records")
    op.drop_index(op.f("ix_usage_records_turn_id"), table_name="usage_records")
    op.drop_index(op.f("ix_usage_records_summary_id"), table_name="usage_records")
    op.drop_index(op.f("ix_usage_records_session_id"), table_name="usage_records")
    op.drop_index(op.f("ix_usage_records_created_at"), table_name="usage_records")
    op.drop_index(op.f("ix_usage_records_agent_message_id"), table_name="usage_records")
    op.drop_table("usage_records")
    op.drop_index(op.f("ix_turn_events_session_id"), table_name="turn_events")
    op.drop_table("turn_events")
    op.drop_index(op.f("ix_session_summaries_turn_id"), table_name="session_summaries")
    op.drop_table("session_summaries")
    op.drop_index(op.f("ix_agent_messages_agent_id"), table_name="agent_messages")
    op.drop_table("agent_messages")
    op.drop_index(
        op.f("ix_turns_session_id"),
        table_name="turns",
        sqlite_where=sa.text("status = 'RUNNING'"),
        postgresql_where=sa.text("status = 'RUNNING'"),
    )
    op.drop_index(op.f("ix_turns_user_id"), table_name="turns")
    op.drop_table("turns")
    op.drop_index(op.f("ix_session_agents_agent_id"), table_name="session_agents")
    op.drop_table("session_agents")
    op.drop_index(op.f("ix_sessions_owner_id_created_at_id"), table_name="sessions")
    op.drop_table("sessions")
    op.drop_index(op.f("ix_api_tokens_user_id"), table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_index(op.f("ix_agents_model_id"), table_name="agents")
    op.drop_table("agents")
    op.drop_index(op.f("ix_users_created_at_id"), table_name="users")
    op.drop_table("users")
    op.drop_table("models")
