"""domain/reports.py without a database: validation, totals, ordering, the row limit, myUsage's
default month, and the batched seed's commits (with fakes)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from types import TracebackType
from typing import Self

import pytest

from domain import reports
from domain.enums import BillingCategory, CallKind
from domain.errors import BadUserInput
from domain.reports import CostDimension, CostReportQuery, CostReportRow, UsageTotals

T0 = datetime(2026, 3, 2, tzinfo=UTC)


class FakeReads:
    """Answers with the rows it was given and records the queries it saw."""

    def __init__(self, rows: Sequence[CostReportRow] = ()) -> None:
        self.rows = list(rows)
        self.queries: list[CostReportQuery] = []
        self.limits: list[int] = []

    async def cost_report_rows(self, query: CostReportQuery, *, limit: int) -> list[CostReportRow]:
        self.queries.append(query)
        self.limits.append(limit)
        return self.rows[:limit]

    async def usage_totals_by_session_ids(
        self, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, UsageTotals]:
        return {}


def totals(cost: int, calls: int = 1, **fields: int) -> UsageTotals:
    return UsageTotals(calls=calls, cost_nano=cost, **fields)


def query(*dimensions: CostDimension) -> CostReportQuery:
    return reports.cost_report_query(start=T0, end=T0 + timedelta(days=1), dimensions=dimensions)


# --- validation ----------------------------------------------------------------------------------


def test_a_time_range_is_converted_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))

    period = reports.time_range(datetime(2026, 3, 2, 2, tzinfo=plus_two), T0 + timedelta(days=1))

    assert period.start == T0
    assert period.start.tzinfo is UTC


@pytest.mark.parametrize(
    ("start", "end", "fragment"),
    [
        (T0, T0, "before"),
        (T0, T0 - timedelta(microseconds=1), "before"),
        (T0, T0 + timedelta(days=366, microseconds=1), "366 days"),
        (T0.replace(tzinfo=None), T0 + timedelta(days=1), "from needs a UTC offset"),
        (T0, (T0 + timedelta(days=1)).replace(tzinfo=None), "to needs a UTC offset"),
    ],
)
def test_bad_time_ranges_are_refused(start: datetime, end: datetime, fragment: str) -> None:
    with pytest.raises(BadUserInput, match=fragment):
        reports.time_range(start, end)


def test_a_span_of_exactly_366_days_is_allowed() -> None:
    period = reports.time_range(T0, T0 + timedelta(days=366))

    assert period.end - period.start == timedelta(days=366)


def test_group_by_keeps_the_order_given_and_refuses_duplicates() -> None:
    assert reports.group_by([CostDimension.DAY, CostDimension.USER]) == (
        CostDimension.DAY,
        CostDimension.USER,
    )
    assert reports.group_by([]) == ()
    with pytest.raises(BadUserInput, match="twice"):
        reports.group_by([CostDimension.DAY, CostDimension.MODEL, CostDimension.DAY])


def test_filters_are_normalised_and_deduplicated() -> None:
    user = uuid.uuid4()

    filters = reports.usage_filters(
        user_ids=[user, user],
        agent_keys=["Qwen", "qwen", "writer"],
        model_aliases=[" qwen-plus "],
        call_kinds=[CallKind.MANAGER_ROUTING],
    )

    assert filters.user_ids == (user,)
    assert filters.agent_keys == ("qwen", "writer")
    assert filters.model_aliases == ("qwen-plus",)
    assert filters.call_kinds == (CallKind.MANAGER_ROUTING,)
    assert filters.billing_categories is None


@pytest.mark.parametrize(
    ("filters", "fragment"),
    [
        ({"agent_keys": []}, "agentKeys must not be empty"),
        ({"billing_categories": []}, "billingCategories must not be empty"),
        ({"agent_keys": ["has space"]}, "agent key"),
        ({"model_aliases": [""]}, "model alias"),
        ({"model_aliases": ["m" * 65]}, "model alias"),
        ({"model_aliases": [f"m{n}" for n in range(101)]}, "at most 100"),
    ],
)
def test_bad_filters_are_refused(filters: dict[str, list[str]], fragment: str) -> None:
    with pytest.raises(BadUserInput, match=fragment):
        reports.usage_filters(**filters)  # type: ignore[arg-type]


def test_the_current_month_runs_to_the_next_months_first_instant() -> None:
    december = reports.current_month(datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    seen_from_tokyo = reports.current_month(
        datetime(2026, 3, 1, 5, tzinfo=timezone(timedelta(hours=9)))
    )

    assert (december.start, december.end) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    # 05:00 on March 1st in Tokyo is still February in UTC
    assert seen_from_tokyo.start == datetime(2026, 2, 1, tzinfo=UTC)
    assert seen_from_tokyo.end == datetime(2026, 3, 1, tzinfo=UTC)


# --- totals and the report use case --------------------------------------------------------------


def test_totals_add_field_by_field() -> None:
    a = UsageTotals(calls=1, prompt_tokens=2, completion_tokens=3, cost_nano=4,
                    billable_nano=5, overhead_nano=6, unpriced_calls=7,
                    refused_calls=8)  # fmt: skip

    assert reports.total([a, a, UsageTotals()]) == UsageTotals(
        calls=2, prompt_tokens=4, completion_tokens=6, cost_nano=8,
        billable_nano=10, overhead_nano=12, unpriced_calls=14, refused_calls=16,
    )  # fmt: skip
    assert reports.total([]) == UsageTotals()


async def test_rows_sort_by_cost_then_dimensions_and_totals_are_their_sum() -> None:
    day = date(2026, 3, 2)
    rows = [
        CostReportRow(model_alias="b", day=day, totals=totals(5)),
        CostReportRow(model_alias="a", day=day + timedelta(1), totals=totals(5)),
        CostReportRow(model_alias="a", day=day, totals=totals(5)),
        CostReportRow(model_alias=None, day=day, totals=totals(5)),
        CostReportRow(model_alias="z", day=day, totals=totals(900, calls=3)),
    ]

    report = await reports.cost_report(
        FakeReads(rows), query(CostDimension.MODEL, CostDimension.DAY)
    )

    assert [(r.model_alias, r.day) for r in report.rows] == [
        ("z", day),
        (None, day),
        ("a", day),
        ("a", day + timedelta(1)),
        ("b", day),
    ]
    assert report.totals == totals(920, calls=7)


async def test_groups_without_calls_are_dropped() -> None:
    # an aggregate without GROUP BY answers one row of zeros even over no usage at all
    report = await reports.cost_report(FakeReads([CostReportRow(totals=UsageTotals())]), query())

    assert report.rows == ()
    assert report.totals == UsageTotals()


async def test_a_report_over_the_row_limit_is_refused() -> None:
    rows = [CostReportRow(agent_key=f"a{n}", totals=totals(n)) for n in range(4)]
    reads = FakeReads(rows)

    with pytest.raises(BadUserInput, match="more than 3 rows"):
        await reports.cost_report(reads, query(CostDimension.AGENT), max_rows=3)
    exact = await reports.cost_report(FakeReads(rows), query(CostDimension.AGENT), max_rows=4)

    assert reads.limits == [4]  # one more than allowed, to know it is over
    assert len(exact.rows) == 4


async def test_my_usage_asks_for_the_callers_rows_over_the_current_month() -> None:
    reads = FakeReads([CostReportRow(totals=totals(7))])
    user = uuid.uuid4()

    result = await reports.my_usage(
        reads, user, start=None, end=None, now=datetime(2026, 3, 17, 9, tzinfo=UTC)
    )

    assert result == totals(7)
    [seen] = reads.queries
    assert seen.group_by == ()
    assert seen.filters.user_ids == (user,)
    assert (seen.range.start, seen.range.end) == (
        datetime(2026, 3, 1, tzinfo=UTC),
        datetime(2026, 4, 1, tzinfo=UTC),
    )


async def test_my_usage_keeps_the_given_bounds() -> None:
    reads = FakeReads()

    await reports.my_usage(reads, uuid.uuid4(), start=T0, end=None, now=T0)
    with pytest.raises(BadUserInput):
        await reports.my_usage(reads, uuid.uuid4(), start=None, end=T0 - timedelta(days=40),
                               now=T0)  # fmt: skip

    assert reads.queries[0].range.start == T0
    assert reads.queries[0].range.end == datetime(2026, 4, 1, tzinfo=UTC)


def test_every_dimension_reads_its_own_row_field() -> None:
    user = uuid.uuid4()
    row = CostReportRow(
        user_id=user,
        agent_key="qwen",
        model_alias="qwen-plus",
        call_kind=CallKind.AGENT_RESPONSE,
        billing_category=BillingCategory.USER_BILLABLE,
        day=date(2026, 3, 2),
        totals=UsageTotals(),
    )

    assert [row.value(d) for d in CostDimension] == [
        user,
        "qwen",
        "qwen-plus",
        CallKind.AGENT_RESPONSE,
        BillingCategory.USER_BILLABLE,
        date(2026, 3, 2),
    ]


# --- the batched seed ----------------------------------------------------------------------------


class FakeBatchUnitOfWork:
    def __init__(self, log: list[str], fail_on: int | None) -> None:
        self.log = log
        self.fail_on = fail_on
        self.staged: list[int] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.staged:
            self.log.append(f"rollback {self.staged}")

    async def stage_batch(self, batch: list[int]) -> int:
        if batch[0] == self.fail_on:
            raise RuntimeError("disk full")
        self.staged = batch
        return len(batch)

    async def commit(self) -> None:
        self.log.append(f"commit {self.staged}")
        self.staged = []


async def test_seed_commits_once_per_batch() -> None:
    log: list[str] = []

    seeded = await reports.seed_in_batches(
        lambda: FakeBatchUnitOfWork(log, None), [[1, 2], [3, 4], [5]]
    )

    assert seeded == 5
    assert log == ["commit [1, 2]", "commit [3, 4]", "commit [5]"]


async def test_a_failing_batch_keeps_the_batches_already_committed() -> None:
    log: list[str] = []

    with pytest.raises(RuntimeError, match="disk full"):
        await reports.seed_in_batches(lambda: FakeBatchUnitOfWork(log, 3), [[1, 2], [3, 4], [5]])

    assert log == ["commit [1, 2]"]
