from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

import strawberry
from strawberry import relay

from domain.money import nano_to_usd
from domain.turns.records import Usage
from graph.catalog.types import ModelPrice
from graph.context import Info
from graph.enums import BillingCategory, CallKind, TokenSource
from graph.ids import global_id
from graph.loaders import load_existing
from graph.users.types import UserNode


@strawberry.type(name="UsageRecord")
class UsageRecordNode(relay.Node):
    node_id: relay.NodeID[str]
    created_at: datetime
    session_id: strawberry.ID | None
    turn_id: strawberry.ID | None
    agent_key: str | None
    call_kind: CallKind
    billing_category: BillingCategory
    attempt: int = strawberry.field(description="1 for a call's first try, 2 for its first retry")
    provider: str
    model_alias: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    total_tokens: int
    token_source: TokenSource
    unpriced: bool
    price: ModelPrice | None = strawberry.field(description="the snapshot used; null: unpriced")
    cost_usd: Decimal = strawberry.field(description="at that price (0 when unpriced)")
    latency_ms: int
    succeeded: bool
    error_code: str | None
    provider_model: str | None = strawberry.field(
        description="the vendor's model id at call time (null on rows from before it was kept)"
    )
    recovered: bool = strawberry.field(
        description="written by recovery for a call its dead runner had in flight: estimated"
    )
    _user_id: strawberry.Private[uuid.UUID]

    @classmethod
    def from_record(cls, usage: Usage) -> UsageRecordNode:
        price = None
        if usage.input_nano_per_mtok is not None and usage.output_nano_per_mtok is not None:
            price = ModelPrice(
                input_usd_per_million_tokens=nano_to_usd(usage.input_nano_per_mtok),
                output_usd_per_million_tokens=nano_to_usd(usage.output_nano_per_mtok),
            )
        return cls(
            node_id=str(usage.id),
            created_at=usage.created_at,
            session_id=strawberry.ID(global_id("Session", usage.session_id))
            if usage.session_id
            else None,
            turn_id=strawberry.ID(global_id("Turn", usage.turn_id)) if usage.turn_id else None,
            agent_key=usage.agent_key,
            call_kind=usage.call_kind,  # type: ignore[arg-type]
            billing_category=usage.billing_category,  # type: ignore[arg-type]
            attempt=usage.attempt,
            provider=usage.provider,
            model_alias=usage.model_alias,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            total_tokens=usage.prompt_tokens + usage.completion_tokens,
            token_source=usage.token_source,  # type: ignore[arg-type]
            unpriced=usage.unpriced,
            price=price,
            cost_usd=nano_to_usd(usage.cost_nano),
            latency_ms=usage.latency_ms,
            succeeded=usage.succeeded,
            error_code=usage.error_code,
            provider_model=usage.provider_model,
            recovered=usage.recovered,
            _user_id=usage.user_id,
        )

    @strawberry.field
    async def user(self, info: Info) -> UserNode:
        user = await load_existing(info.context.loaders.user, self._user_id, "usage user")
        return UserNode.from_record(user)
