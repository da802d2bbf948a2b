"""Turn rows to the domain's turn records (and outbox rows to turn events)."""

from __future__ import annotations

from domain.turns.contracts import ContextAudit, RoutingDecision
from domain.turns.events import TurnEvent, TurnEventType
from domain.turns.records import AgentMessage, Turn, Usage
from infra.db.models import AgentMessageRow, TurnEventRow, TurnRow, UsageRecordRow


def turn(row: TurnRow) -> Turn:
    return Turn(
        id=row.id,
        session_id=row.session_id,
        user_id=row.user_id,
        index=row.index,
        mode=row.mode,
        status=row.status,
        user_message=row.user_message,
        assistant_output=row.assistant_output,
        routing=RoutingDecision.from_json(row.routing) if row.routing else None,
        context_audit=ContextAudit.from_json(row.context_audit) if row.context_audit else None,
        idempotency_key=row.idempotency_key,
        request_fingerprint=row.request_fingerprint,
        runner_id=row.runner_id,
        lease_expires_at=row.lease_expires_at,
        cancel_requested_at=row.cancel_requested_at,
        summary_triggered=row.summary_triggered,
        failure_reason=row.failure_reason,
        reserved_nano=row.reserved_nano,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def message(row: AgentMessageRow) -> AgentMessage:
    return AgentMessage(
        id=row.id,
        turn_id=row.turn_id,
        agent_id=row.agent_id,
        position=row.position,
        status=row.status,
        content=row.content,
        error_code=row.error_code,
        error_message=row.error_message,
        model_alias=row.model_alias,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def usage(row: UsageRecordRow) -> Usage:
    return Usage(
        id=row.id,
        created_at=row.created_at,
        user_id=row.user_id,
        session_id=row.session_id,
        turn_id=row.turn_id,
        agent_message_id=row.agent_message_id,
        summary_id=row.summary_id,
        agent_key=row.agent_key,
        call_kind=row.call_kind,
        billing_category=row.billing_category,
        position=row.position,
        attempt=row.attempt,
        provider=row.provider,
        model_alias=row.model_alias,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        cached_tokens=row.cached_tokens,
        reasoning_tokens=row.reasoning_tokens,
        token_source=row.token_source,
        unpriced=row.unpriced,
        input_nano_per_mtok=row.input_nano_per_mtok,
        output_nano_per_mtok=row.output_nano_per_mtok,
        cost_nano=row.cost_nano,
        latency_ms=row.latency_ms,
        succeeded=row.succeeded,
        error_code=row.error_code,
        provider_request_id=row.provider_request_id,
        provider_model=row.provider_model,
        recovered=row.recovered,
    )


def event(row: TurnEventRow) -> TurnEvent:
    return TurnEvent(
        turn_id=row.turn_id,
        session_id=row.session_id,
        sequence=row.sequence,
        type=TurnEventType(row.event_type),
        at=row.created_at,
        payload=dict(row.payload),
    )
