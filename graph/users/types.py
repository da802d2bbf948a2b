from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

import strawberry
from strawberry import relay

from domain import records
from domain.money import nano_to_usd
from domain.turns.budget import used_fraction
from graph.connections import Edge, PageInfo
from graph.context import Info
from graph.enums import Role


@strawberry.type(name="User")
class UserNode(relay.Node):
    node_id: relay.NodeID[str]
    handle: str
    role: Role
    monthly_budget_usd: Decimal | None = strawberry.field(
        description="null: no budget", default=None
    )
    created_at: datetime
    _uuid: strawberry.Private[uuid.UUID]
    _budget_nano: strawberry.Private[int | None]

    @classmethod
    def from_record(cls, user: records.User) -> UserNode:
        return cls(
            node_id=str(user.id),
            handle=user.handle,
            role=user.role,  # type: ignore[arg-type]
            monthly_budget_usd=(
                nano_to_usd(user.monthly_budget_nano)
                if user.monthly_budget_nano is not None
                else None
            ),
            created_at=user.created_at,
            _uuid=user.id,
            _budget_nano=user.monthly_budget_nano,
        )

    @strawberry.field(description="billable cost this calendar month (UTC)")
    async def month_spend_usd(self, info: Info) -> Decimal:
        return nano_to_usd(await info.context.loaders.month_spend.load(self._uuid))

    @strawberry.field(description="null: no budget")
    async def budget_remaining_usd(self, info: Info) -> Decimal | None:
        if self._budget_nano is None:
            return None
        spent = await info.context.loaders.month_spend.load(self._uuid)
        return nano_to_usd(max(self._budget_nano - spent, 0))

    @strawberry.field(
        description="month spend / monthly budget (above 1 once overspent); null: no budget"
    )
    async def budget_used_fraction(self, info: Info) -> float | None:
        if self._budget_nano is None:
            return None
        spent = await info.context.loaders.month_spend.load(self._uuid)
        return used_fraction(self._budget_nano, spent)


@strawberry.type(name="UserConnection")
class UserConnection:
    edges: list[Edge[UserNode]]
    page_info: PageInfo
    total_count: int


@strawberry.type
class IssuedToken:
    token: str = strawberry.field(description="the secret, shown this once")
    user: UserNode
