"""`rateLimit`: what this operation costs and what the caller has left, after GitHub's field."""

from __future__ import annotations

from datetime import datetime

import strawberry

from graph.context import Info
from graph.permissions import IsAuthenticated


@strawberry.type(description="the limits this operation counts against")
class RateLimit:
    cost: int = strawberry.field(description="this operation's static cost (docs/query_cost.md)")
    max_cost: int = strawberry.field(description="the most an operation may cost")
    requests_remaining: int | None = strawberry.field(
        description="requests left in the current window; null: no request limit applies"
    )
    reset_at: datetime | None = strawberry.field(
        description="when the window refills; null: no request limit applies"
    )


@strawberry.type
class RateLimitQueries:
    @strawberry.field(permission_classes=[IsAuthenticated])
    def rate_limit(self, info: Info) -> RateLimit:
        context = info.context
        window = context.request_window
        return RateLimit(
            cost=context.query_cost or 0,
            max_cost=context.runtime.limits.max_query_cost,
            requests_remaining=None if window is None else window.remaining,
            reset_at=None if window is None else window.reset_at,
        )
