"""Cost reports over the usage ledger: dimensions, filters, validation, contracts, use cases.

Every figure is an integer nano-USD sum computed by the database (docs/cost_reports.md); a
report's totals are the sum of its rows, so the two always agree exactly. `myUsage` and
`Session.usage` use the same totals contract.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

from domain import validation
from domain.enums import BillingCategory, CallKind
from domain.errors import BadUserInput
from domain.spend import month_start

MAX_SPAN = timedelta(days=366)
MAX_FILTER_VALUES = 100
MAX_ROWS = 10_000  # GraphQL: ~12 leaf fields a row at ~7 µs each stays under a second
MAX_CSV_ROWS = 100_000  # CSV rows are encoded as they stream, without Strawberry's per-field cost


class CostDimension(StrEnum):
    USER = "USER"
    AGENT = "AGENT"
    MODEL = "MODEL"
    CALL_KIND = "CALL_KIND"
    BILLING_CATEGORY = "BILLING_CATEGORY"
    DAY = "DAY"  # the UTC calendar day of the call


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageTotals:
    """Sums over usage rows. Money in nano-USD: `cost` counts every row at list price,
    `billable` the USER_BILLABLE rows, `overhead` the SYSTEM_OVERHEAD rows."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_nano: int = 0
    billable_nano: int = 0
    overhead_nano: int = 0
    unpriced_calls: int = 0
    refused_calls: int = 0  # refused by the provider: rows with 0 tokens and cost 0

    def __add__(self, other: UsageTotals) -> UsageTotals:
        return UsageTotals(
            calls=self.calls + other.calls,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cost_nano=self.cost_nano + other.cost_nano,
            billable_nano=self.billable_nano + other.billable_nano,
            overhead_nano=self.overhead_nano + other.overhead_nano,
            unpriced_calls=self.unpriced_calls + other.unpriced_calls,
            refused_calls=self.refused_calls + other.refused_calls,
        )


def total(totals: Iterable[UsageTotals]) -> UsageTotals:
    result = UsageTotals()
    for item in totals:
        result += item
    return result


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeRange:
    """`[start, end)` in UTC: the start is included, the end is not."""

    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageFilters:
    """None: no filter on that column. Values are validated and de-duplicated."""

    user_ids: tuple[uuid.UUID, ...] | None = None
    agent_keys: tuple[str, ...] | None = None
    model_aliases: tuple[str, ...] | None = None
    call_kinds: tuple[CallKind, ...] | None = None
    billing_categories: tuple[BillingCategory, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CostReportQuery:
    range: TimeRange
    group_by: tuple[CostDimension, ...]
    filters: UsageFilters = field(default_factory=UsageFilters)


@dataclass(frozen=True, slots=True, kw_only=True)
class CostReportRow:
    """One group. A dimension not grouped by is None; so is a grouped value the rows lack
    (e.g. the agent key of a manager's routing call)."""

    user_id: uuid.UUID | None = None
    agent_key: str | None = None
    model_alias: str | None = None
    call_kind: CallKind | None = None
    billing_category: BillingCategory | None = None
    day: date | None = None
    totals: UsageTotals

    def value(self, dimension: CostDimension) -> object:
        return getattr(self, _ROW_FIELD[dimension])


_ROW_FIELD = {
    CostDimension.USER: "user_id",
    CostDimension.AGENT: "agent_key",
    CostDimension.MODEL: "model_alias",
    CostDimension.CALL_KIND: "call_kind",
    CostDimension.BILLING_CATEGORY: "billing_category",
    CostDimension.DAY: "day",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class CostReport:
    query: CostReportQuery
    rows: tuple[CostReportRow, ...]
    totals: UsageTotals


class ReportReads(Protocol):
    """Aggregates computed by the database; each call runs in its own short session."""

    async def cost_report_rows(self, query: CostReportQuery, *, limit: int) -> list[CostReportRow]:
        """At most `limit` groups, unordered; groups without rows are absent."""
        ...

    async def usage_totals_by_session_ids(
        self, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, UsageTotals]:
        """Every usage row of each session, at any time (sessions without rows are absent)."""
        ...


# --- validation ---------------------------------------------------------------------------


def time_range(start: datetime, end: datetime) -> TimeRange:
    for name, value in (("from", start), ("to", end)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise BadUserInput(f"{name} needs a UTC offset, e.g. 2026-01-01T00:00:00Z", field=name)
    start, end = _utc(start, "from"), _utc(end, "to")
    if start >= end:
        raise BadUserInput("from must be before to (from is included, to is not)")
    if end - start > MAX_SPAN:
        raise BadUserInput(f"a report spans at most {MAX_SPAN.days} days")
    return TimeRange(start=start, end=end)


def _utc(value: datetime, name: str) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first representable instant
        raise BadUserInput(f"{name} is outside the years 1-9999 in UTC", field=name) from None


def group_by(dimensions: Sequence[CostDimension]) -> tuple[CostDimension, ...]:
    if len(set(dimensions)) != len(dimensions):
        raise BadUserInput("groupBy names a dimension twice")
    return tuple(dimensions)


def usage_filters(
    *,
    user_ids: Sequence[uuid.UUID] | None = None,
    agent_keys: Sequence[str] | None = None,
    model_aliases: Sequence[str] | None = None,
    call_kinds: Sequence[CallKind] | None = None,
    billing_categories: Sequence[BillingCategory] | None = None,
) -> UsageFilters:
    return UsageFilters(
        user_ids=_values("userIds", user_ids, lambda value: value),
        agent_keys=_values("agentKeys", agent_keys, validation.agent_key),
        model_aliases=_values("modelAliases", model_aliases, _model_alias),
        call_kinds=_values("callKinds", call_kinds, lambda value: value),
        billing_categories=_values("billingCategories", billing_categories, lambda value: value),
    )


T = TypeVar("T")
V = TypeVar("V")


def _values(name: str, values: Sequence[V] | None, check: Callable[[V], T]) -> tuple[T, ...] | None:
    if values is None:
        return None
    if not values:
        raise BadUserInput(f"{name} must not be empty; omit it to include everything")
    if len(values) > MAX_FILTER_VALUES:
        raise BadUserInput(f"{name} lists at most {MAX_FILTER_VALUES} values")
    return tuple(dict.fromkeys(check(value) for value in values))


def _model_alias(alias: str) -> str:
    # NUL reaches this filter from the CSV route's query string (%00), not only from GraphQL.
    stripped = validation.storable(alias, field="modelAliases").strip()
    if not stripped or len(stripped) > 64:
        raise BadUserInput("a model alias has 1-64 characters")
    return stripped


def cost_report_query(
    *,
    start: datetime,
    end: datetime,
    dimensions: Sequence[CostDimension],
    filters: UsageFilters | None = None,
) -> CostReportQuery:
    return CostReportQuery(
        range=time_range(start, end),
        group_by=group_by(dimensions),
        filters=filters or UsageFilters(),
    )


def current_month(now: datetime) -> TimeRange:
    """The UTC calendar month around `now`: [its first instant, the next month's)."""
    start = month_start(now)
    return TimeRange(start=start, end=month_start(start + timedelta(days=32)))


# --- use cases ----------------------------------------------------------------------------


def row_order(query: CostReportQuery) -> Callable[[CostReportRow], tuple[Any, ...]]:
    """Cost descending, then the grouped dimensions in groupBy order (missing values first)."""

    def key(row: CostReportRow) -> tuple[Any, ...]:
        values = (row.value(dimension) for dimension in query.group_by)
        return (-row.totals.cost_nano, *((v is not None, _sortable(v)) for v in values))

    return key


def _sortable(value: object) -> str:
    return value.isoformat() if isinstance(value, date) else str(value or "")


async def cost_report(
    reads: ReportReads, query: CostReportQuery, *, max_rows: int = MAX_ROWS
) -> CostReport:
    """The groups of `query`, sorted, with totals equal to their sum."""
    rows = [
        row for row in await reads.cost_report_rows(query, limit=max_rows + 1) if row.totals.calls
    ]
    if len(rows) > max_rows:
        raise BadUserInput(
            f"the report has more than {max_rows} rows: group by fewer dimensions, "
            "filter, or shorten the range"
        )
    rows.sort(key=row_order(query))
    return CostReport(query=query, rows=tuple(rows), totals=total(row.totals for row in rows))


async def my_usage(
    reads: ReportReads,
    user_id: uuid.UUID,
    *,
    start: datetime | None,
    end: datetime | None,
    now: datetime,
) -> UsageTotals:
    """The caller's own rows over `[start, end)`; each bound defaults to the current UTC month's."""
    month = current_month(now)
    query = cost_report_query(
        start=start or month.start,
        end=end or month.end,
        dimensions=(),
        filters=UsageFilters(user_ids=(user_id,)),
    )
    return (await cost_report(reads, query)).totals


# --- dev/bench seeding --------------------------------------------------------------------

B_contra = TypeVar("B_contra", contravariant=True)


class BatchUnitOfWork(Protocol[B_contra]):
    """A unit of work that stages one batch of generated rows (`pantheon seed-usage`)."""

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    async def stage_batch(self, batch: B_contra) -> int:
        """Stages the batch; returns how many rows it holds."""
        ...

    async def commit(self) -> None: ...


async def seed_in_batches(new_uow: Callable[[], BatchUnitOfWork[V]], batches: Iterable[V]) -> int:
    """Dev and bench data only: one unit of work and one commit per batch, so a million-row
    seed never holds one huge transaction; a failure keeps the batches already committed."""
    seeded = 0
    for batch in batches:
        async with new_uow() as uow:
            seeded += await uow.stage_batch(batch)
            await uow.commit()
    return seeded
