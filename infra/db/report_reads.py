"""Cost report SQL: one GROUP BY over integer nano-USD, on SQLite and PostgreSQL alike.

Nothing here loads usage rows into Python: the database sums them and returns one row per
group. The UTC day is computed in SQL (`utc_day`) so both backends bucket identically.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Date, Select, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from domain.enums import BillingCategory, TokenSource
from domain.reports import (
    CostDimension,
    CostReportQuery,
    CostReportRow,
    TimeRange,
    UsageFilters,
    UsageTotals,
)
from infra.db.models import UsageRecordRow as U


class utc_day(FunctionElement[Any]):  # noqa: N801 - named like the SQL function it renders
    """The UTC calendar day of a `UTCDateTime` column."""

    type = Date()
    inherit_cache = True


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    # timestamptz -> the wall clock in UTC -> its date, whatever the session's TimeZone is.
    return f"(timezone('UTC', {compiler.process(element.clauses, **kw)}))::date"


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    # UTCDateTime stores naive UTC text ('YYYY-MM-DD HH:MM:SS.ffffff') on SQLite.
    return f"date({compiler.process(element.clauses, **kw)})"


DIMENSION_COLUMNS: dict[CostDimension, Any] = {  # columns and one SQL expression
    CostDimension.USER: U.user_id,
    CostDimension.AGENT: U.agent_key,
    CostDimension.MODEL: U.model_alias,
    CostDimension.CALL_KIND: U.call_kind,
    CostDimension.BILLING_CATEGORY: U.billing_category,
    CostDimension.DAY: utc_day(U.created_at),
}
_ROW_FIELDS = {
    CostDimension.USER: "user_id",
    CostDimension.AGENT: "agent_key",
    CostDimension.MODEL: "model_alias",
    CostDimension.CALL_KIND: "call_kind",
    CostDimension.BILLING_CATEGORY: "billing_category",
    CostDimension.DAY: "day",
}


def _cost_of(category: BillingCategory) -> ColumnElement[Any]:
    return func.sum(case((U.billing_category == category, U.cost_nano), else_=0))


def totals_columns() -> list[ColumnElement[Any]]:
    """The UsageTotals aggregates, in UsageTotals field order."""
    return [
        func.count(),
        func.coalesce(func.sum(U.prompt_tokens), 0),
        func.coalesce(func.sum(U.completion_tokens), 0),
        func.coalesce(func.sum(U.cost_nano), 0),
        func.coalesce(_cost_of(BillingCategory.USER_BILLABLE), 0),
        func.coalesce(_cost_of(BillingCategory.SYSTEM_OVERHEAD), 0),
        func.coalesce(func.sum(case((U.unpriced, 1), else_=0)), 0),
        func.coalesce(func.sum(case((U.token_source == TokenSource.NONE, 1), else_=0)), 0),
    ]


def totals_from(values: Sequence[Any]) -> UsageTotals:
    # PostgreSQL's sum(bigint) is numeric (a Decimal here); every value is whole.
    calls, prompt, completion, cost, billable, overhead, unpriced, refused = (
        int(v) for v in values
    )
    return UsageTotals(
        calls=calls,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost_nano=cost,
        billable_nano=billable,
        overhead_nano=overhead,
        unpriced_calls=unpriced,
        refused_calls=refused,
    )


def usage_conditions(period: TimeRange, filters: UsageFilters) -> list[ColumnElement[bool]]:
    conditions = [U.created_at >= period.start, U.created_at < period.end]
    for column, values in (
        (U.user_id, filters.user_ids),
        (U.agent_key, filters.agent_keys),
        (U.model_alias, filters.model_aliases),
        (U.call_kind, filters.call_kinds),
        (U.billing_category, filters.billing_categories),
    ):
        if values is not None:
            conditions.append(column.in_(values))
    return conditions


def cost_report_statement(query: CostReportQuery) -> Select[Any]:
    """The report's one statement; the bench runs the same SQL raw to measure our overhead."""
    dimensions = [DIMENSION_COLUMNS[dimension] for dimension in query.group_by]
    return (
        select(*dimensions, *totals_columns())
        .where(*usage_conditions(query.range, query.filters))
        .group_by(*dimensions)
    )


class SqlReportReads:
    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = session_factory

    async def cost_report_rows(self, query: CostReportQuery, *, limit: int) -> list[CostReportRow]:
        fields = [_ROW_FIELDS[dimension] for dimension in query.group_by]
        width = len(fields)
        async with self._factory() as session:
            result = await session.execute(cost_report_statement(query).limit(limit))
            return [
                CostReportRow(
                    **dict(zip(fields, row[:width], strict=True)), totals=totals_from(row[width:])
                )
                for row in result
            ]

    async def usage_totals_by_session_ids(
        self, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, UsageTotals]:
        statement = (
            select(U.session_id, *totals_columns())
            .where(U.session_id.in_(ids))
            .group_by(U.session_id)
        )
        async with self._factory() as session:
            result = await session.execute(statement)
            return {row[0]: totals_from(row[1:]) for row in result}
