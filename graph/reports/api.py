"""Reports: the admin's `costReport` and every user's `myUsage`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated

import strawberry

from domain import reports
from graph.context import Info
from graph.enums import BillingCategory, CallKind
from graph.ids import uuid_of
from graph.permissions import IsAdmin, IsAuthenticated
from graph.reports.types import CostDimension, CostReportType, UsageTotals


@strawberry.input(name="CostReportInput")
class CostReportInput:
    from_: datetime = strawberry.field(name="from", description="included")
    to: datetime = strawberry.field(description="excluded; at most 366 days after from")
    group_by: list[CostDimension]  # type: ignore[valid-type]
    user_ids: list[strawberry.ID] | None = None
    agent_keys: list[str] | None = None
    model_aliases: list[str] | None = None
    call_kinds: list[CallKind] | None = None
    billing_categories: list[BillingCategory] | None = None

    def to_domain(self) -> reports.CostReportQuery:
        return reports.cost_report_query(
            start=self.from_,
            end=self.to,
            dimensions=self.group_by,
            filters=reports.usage_filters(
                user_ids=user_uuids(self.user_ids),
                agent_keys=self.agent_keys,
                model_aliases=self.model_aliases,
                call_kinds=self.call_kinds,  # type: ignore[arg-type]
                billing_categories=self.billing_categories,  # type: ignore[arg-type]
            ),
        )


def user_uuids(raw_ids: Sequence[str] | None) -> list[uuid.UUID] | None:
    """Global ids of users, type-checked: another type's id is BAD_USER_INPUT."""
    return None if raw_ids is None else [uuid_of(raw, "User") for raw in raw_ids]


@strawberry.type
class ReportQueries:
    @strawberry.field(
        permission_classes=[IsAdmin],
        description="ADMIN: usage over [from, to) grouped by any dimensions, with totals",
    )
    async def cost_report(self, info: Info, input: CostReportInput) -> CostReportType:
        report = await reports.cost_report(info.context.runtime.report_reads, input.to_domain())
        return CostReportType.from_domain(report)

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="the caller's own usage over [from, to); default: the current UTC month",
    )
    async def my_usage(
        self,
        info: Info,
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        to: datetime | None = None,
    ) -> UsageTotals:
        totals = await reports.my_usage(
            info.context.runtime.report_reads,
            info.context.require_viewer().id,
            start=from_,
            end=to,
            now=datetime.now(UTC),
        )
        return UsageTotals.from_domain(totals)
