"""Stored turn data as the services and the API read it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from domain.enums import (
    AgentMessageStatus,
    BillingCategory,
    CallKind,
    TokenSource,
    TurnMode,
    TurnStatus,
)
from domain.turns.contracts import ContextAudit, RoutingDecision


@dataclass(frozen=True, slots=True, kw_only=True)
class Turn:
    id: uuid.UUID
    session_id: uuid.UUID
    user_id: uuid.UUID
    index: int
    mode: TurnMode
    status: TurnStatus
    user_message: str
    assistant_output: str
    routing: RoutingDecision | None
    context_audit: ContextAudit | None
    idempotency_key: str | None
    request_fingerprint: str | None
    runner_id: str | None
    lease_expires_at: datetime | None
    cancel_requested_at: datetime | None
    summary_triggered: bool
    failure_reason: str | None
    reserved_nano: int
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentMessage:
    id: uuid.UUID
    turn_id: uuid.UUID
    agent_id: uuid.UUID
    position: int
    status: AgentMessageStatus
    content: str
    error_code: str | None
    error_message: str | None
    model_alias: str
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    id: uuid.UUID
    created_at: datetime
    user_id: uuid.UUID
    session_id: uuid.UUID | None
    turn_id: uuid.UUID | None
    agent_message_id: uuid.UUID | None
    summary_id: uuid.UUID | None
    agent_key: str | None
    call_kind: CallKind
    billing_category: BillingCategory
    position: int
    attempt: int
    provider: str
    model_alias: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    token_source: TokenSource
    unpriced: bool
    input_nano_per_mtok: int | None
    output_nano_per_mtok: int | None
    cost_nano: int
    latency_ms: int
    succeeded: bool
    error_code: str | None
    provider_request_id: str | None
    provider_model: str | None = None
    recovered: bool = False
