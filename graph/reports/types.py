"""GraphQL shapes of usage totals and cost reports, mapped from domain/reports.py."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

import strawberry

from domain import reports
from domain.money import nano_to_usd
from graph.context import Info
from graph.enums import BillingCategory, CallKind
from graph.users.types import UserNode

CostDimension = strawberry.enum(reports.CostDimension)


@strawberry.type(name="UsageTotals")
class UsageTotals:
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal = strawberry.field(description="every row at list price")
    billable_cost_usd: Decimal = strawberry.field(description="USER_BILLABLE rows")
    overhead_cost_usd: Decimal = strawberry.field(description="SYSTEM_OVERHEAD rows")
    unpriced_calls: int = strawberry.field(description="calls of unpriced models (cost 0)")
    refused_calls: int = strawberry.field(
        description="attempts the provider refused (429, 5xx, 4xx): counted in calls, 0 tokens, "
        "cost 0"
    )

    @classmethod
    def from_domain(cls, totals: reports.UsageTotals) -> UsageTotals:
        return cls(
            calls=totals.calls,
            prompt_tokens=totals.prompt_tokens,
            completion_tokens=totals.completion_tokens,
            cost_usd=nano_to_usd(totals.cost_nano),
            billable_cost_usd=nano_to_usd(totals.billable_nano),
            overhead_cost_usd=nano_to_usd(totals.overhead_nano),
            unpriced_calls=totals.unpriced_calls,
            refused_calls=totals.refused_calls,
        )


@strawberry.type(name="CostReportRow", description="null dimensions: not grouped by")
class CostReportRowType:
    agent_key: str | None
    model_alias: str | None
    call_kind: CallKind | None
    billing_category: BillingCategory | None
    day: date | None = strawberry.field(description="the UTC calendar day")
    totals: UsageTotals
    _user_id: strawberry.Private[uuid.UUID | None]

    @classmethod
    def from_domain(cls, row: reports.CostReportRow) -> CostReportRowType:
        return cls(
            agent_key=row.agent_key,
            model_alias=row.model_alias,
            call_kind=row.call_kind,  # type: ignore[arg-type]
            billing_category=row.billing_category,  # type: ignore[arg-type]
            day=row.day,
            totals=UsageTotals.from_domain(row.totals),
            _user_id=row.user_id,
        )

    @strawberry.field
    async def user(self, info: Info) -> UserNode | None:
        if self._user_id is None:
            return None
        user = await info.context.loaders.user.load(self._user_id)
        return UserNode.from_record(user) if user else None


@strawberry.type(name="CostReport")
class CostReportType:
    from_: datetime = strawberry.field(name="from", description="included")
    to: datetime = strawberry.field(description="excluded")
    group_by: list[CostDimension]  # type: ignore[valid-type]
    rows: list[CostReportRowType] = strawberry.field(
        description="cost descending, then by the grouped dimensions"
    )
    totals: UsageTotals = strawberry.field(description="the sum of the rows")

    @classmethod
    def from_domain(cls, report: reports.CostReport) -> CostReportType:
        return cls(
            from_=report.query.range.start,
            to=report.query.range.end,
            group_by=list(report.query.group_by),
            rows=[CostReportRowType.from_domain(row) for row in report.rows],
            totals=UsageTotals.from_domain(report.totals),
        )
