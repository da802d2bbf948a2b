"""The queries of `pantheon ledger check` and the ledger side of `pantheon ledger reconcile`.

The rules are domain/ledger.py's; each query here selects the rows one rule is about. Usage rows
without a turn (those `pantheon seed-usage` makes for benchmarks) have no content to check.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import String, and_, case, cast, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.enums import AgentMessageStatus, CallKind, TokenSource, TurnStatus
from domain.ledger import DayModelTokens, Finding, FindingKind, PricedRow
from infra.db.models import AgentMessageRow, SessionSummaryRow, TurnRow
from infra.db.models import UsageRecordRow as U
from infra.db.report_reads import utc_day

BATCH = 5_000


class SqlLedgerReads:
    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = session_factory

    async def usage_without_content(self) -> list[Finding]:
        no_routing = or_(TurnRow.routing.is_(None), cast(TurnRow.routing, String) == "null")
        agent_rows = select(U.id, U.call_kind).where(
            U.turn_id.is_not(None),
            U.call_kind == CallKind.AGENT_RESPONSE,
            U.agent_message_id.is_(None),
        )
        manager_rows = (
            select(U.id, U.call_kind)
            .join(TurnRow, TurnRow.id == U.turn_id)
            .where(
                U.call_kind == CallKind.MANAGER_ROUTING,
                U.succeeded.is_(True),
                U.recovered.is_(False),
                no_routing,
            )
        )
        found = []
        for statement, missing in (
            (agent_rows, "its agent message"),
            (manager_rows, "the turn's routing decision"),
        ):
            for row_id, kind in await self._all(statement):
                found.append(
                    Finding(
                        kind=FindingKind.USAGE_WITHOUT_CONTENT,
                        subject=f"usage_records {row_id}",
                        detail=f"{kind} row without {missing}",
                    )
                )
        return found

    async def content_without_usage(self) -> list[Finding]:
        messages = select(AgentMessageRow.id).where(
            AgentMessageRow.status == AgentMessageStatus.COMPLETED,
            ~exists().where(U.agent_message_id == AgentMessageRow.id),
        )
        found = [
            Finding(
                kind=FindingKind.CONTENT_WITHOUT_USAGE,
                subject=f"agent_messages {message_id}",
                detail="COMPLETED message without a usage row",
            )
            for (message_id,) in await self._all(messages)
        ]
        for kind, fell_back in (
            (CallKind.SUMMARY_GENERATION, SessionSummaryRow.generation_used_fallback),
            (CallKind.SUMMARY_EXTRACTION, SessionSummaryRow.extraction_used_fallback),
        ):
            summaries = select(SessionSummaryRow.id).where(
                fell_back.is_(False),
                ~exists().where(U.summary_id == SessionSummaryRow.id, U.call_kind == kind),
            )
            found += [
                Finding(
                    kind=FindingKind.CONTENT_WITHOUT_USAGE,
                    subject=f"session_summaries {summary_id}",
                    detail=f"summary made by its model without a {kind} usage row",
                )
                for (summary_id,) in await self._all(summaries)
            ]
        return found

    async def unsettled_reservations(self) -> list[Finding]:
        statement = select(TurnRow.id, TurnRow.status, TurnRow.reserved_nano).where(
            TurnRow.status != TurnStatus.RUNNING, TurnRow.reserved_nano != 0
        )
        return [
            Finding(
                kind=FindingKind.UNSETTLED_RESERVATION,
                subject=f"turns {turn_id}",
                detail=f"{status} turn still reserves {reserved} nano-USD",
            )
            for turn_id, status, reserved in await self._all(statement)
        ]

    async def running_past(self, cutoff: datetime) -> list[Finding]:
        statement = select(TurnRow.id, TurnRow.lease_expires_at).where(
            TurnRow.status == TurnStatus.RUNNING,
            or_(TurnRow.lease_expires_at.is_(None), TurnRow.lease_expires_at < cutoff),
        )
        return [
            Finding(
                kind=FindingKind.RUNNING_PAST_LEASE,
                subject=f"turns {turn_id}",
                detail="RUNNING without a lease"
                if lease is None
                else f"RUNNING, its lease expired at {lease.isoformat()}",
            )
            for turn_id, lease in await self._all(statement)
        ]

    async def priced_rows(self) -> AsyncIterator[Sequence[PricedRow]]:
        statement = select(
            U.id,
            U.prompt_tokens,
            U.completion_tokens,
            U.token_source,
            U.unpriced,
            U.input_nano_per_mtok,
            U.output_nano_per_mtok,
            U.cost_nano,
        ).execution_options(yield_per=BATCH)
        async with self._factory() as session:
            result = await session.stream(statement)
            async for partition in result.partitions():
                yield [
                    PricedRow(
                        id=row[0],
                        prompt_tokens=row[1],
                        completion_tokens=row[2],
                        token_source=TokenSource(row[3]),
                        unpriced=row[4],
                        input_nano_per_mtok=row[5],
                        output_nano_per_mtok=row[6],
                        cost_nano=row[7],
                    )
                    for row in partition
                ]

    async def tokens_by_day_and_model(
        self, *, start: datetime, end: datetime, provider: str | None
    ) -> list[DayModelTokens]:
        """The ledger's tokens per UTC day and vendor model id over [start, end). Refused rows
        (0 tokens) are left out of the request count: no tokens were served for them."""
        day = utc_day(U.created_at)
        conditions = [U.created_at >= start, U.created_at < end]
        if provider is not None:
            conditions.append(U.provider == provider)
        statement = (
            select(
                day,
                U.provider_model,
                func.coalesce(func.sum(U.prompt_tokens), 0),
                func.coalesce(func.sum(U.completion_tokens), 0),
                func.coalesce(func.sum(case((U.token_source != TokenSource.NONE, 1), else_=0)), 0),
            )
            .where(and_(*conditions))
            .group_by(day, U.provider_model)
        )
        return [
            DayModelTokens(
                day=_date(row[0]),
                model=row[1],
                input_tokens=int(row[2]),
                output_tokens=int(row[3]),
                requests=int(row[4]),
            )
            for row in await self._all(statement)
        ]

    async def _all(self, statement: Any) -> list[Any]:
        async with self._factory() as session:
            return list(await session.execute(statement))


def _date(value: Any) -> date:
    # SQLite's date() is text; PostgreSQL's ::date a date.
    return value if isinstance(value, date) else date.fromisoformat(str(value))
