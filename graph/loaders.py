"""Per-request dataloaders, one per relation. Each batch runs in its own short DB session
(the read store's), so concurrently resolving fields never share a session."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiodataloader import DataLoader

from domain.ports import ReadStore
from domain.records import Agent, Model, Session, User
from domain.reports import ReportReads, UsageTotals
from domain.spend import month_start
from domain.summaries.contracts import Summary
from domain.turns.records import AgentMessage, Turn, Usage
from graph.runtime import Runtime

T = TypeVar("T")


def _by_id(
    fetch: Callable[[Sequence[uuid.UUID]], Awaitable[list[T]]],
) -> Callable[[list[uuid.UUID]], Awaitable[list[T | None]]]:
    async def batch(ids: list[uuid.UUID]) -> list[T | None]:
        found: dict[Any, T] = {item.id: item for item in await fetch(ids)}  # type: ignore[attr-defined]
        return [found.get(key) for key in ids]

    return batch


K = TypeVar("K")


async def load_existing(loader: DataLoader[K, T | None], key: K, what: str) -> T:
    """Loads a row that a foreign key (or an event written after it) guarantees; a miss is a
    bug in Pantheon, not the caller's input, so it fails loudly (and is masked for clients)."""
    found = await loader.load(key)
    if found is None:
        raise LookupError(f"{what} {key} missing")
    return found


def _grouped(
    fetch: Callable[[Sequence[uuid.UUID]], Awaitable[dict[uuid.UUID, list[T]]]],
) -> Callable[[list[uuid.UUID]], Awaitable[list[list[T]]]]:
    async def batch(ids: list[uuid.UUID]) -> list[list[T]]:
        found = await fetch(ids)
        return [found.get(key, []) for key in ids]

    return batch


class Loaders:
    """Created inside the context getter: aiodataloader binds the running loop at creation."""

    def __init__(self, runtime: Runtime) -> None:
        reads, turn_reads = runtime.reads, runtime.turn_reads
        summary_reads = runtime.summary_reads
        self.user: DataLoader[uuid.UUID, User | None] = DataLoader(_by_id(reads.users_by_ids))
        self.model: DataLoader[uuid.UUID, Model | None] = DataLoader(_by_id(reads.models_by_ids))
        self.agent: DataLoader[uuid.UUID, Agent | None] = DataLoader(_by_id(reads.agents_by_ids))
        self.session: DataLoader[uuid.UUID, Session | None] = DataLoader(
            _by_id(reads.sessions_by_ids)
        )
        self.roster: DataLoader[uuid.UUID, list[uuid.UUID]] = DataLoader(self._rosters(reads))
        self.month_spend: DataLoader[uuid.UUID, int] = DataLoader(self._month_spend(reads))
        self.turn: DataLoader[uuid.UUID, Turn | None] = DataLoader(_by_id(turn_reads.turns_by_ids))
        self.message: DataLoader[uuid.UUID, AgentMessage | None] = DataLoader(
            _by_id(turn_reads.messages_by_ids)
        )
        self.usage: DataLoader[uuid.UUID, Usage | None] = DataLoader(
            _by_id(turn_reads.usage_by_ids)
        )
        self.turn_messages: DataLoader[uuid.UUID, list[AgentMessage]] = DataLoader(
            _grouped(turn_reads.messages_by_turn_ids)
        )
        self.turn_usage: DataLoader[uuid.UUID, list[Usage]] = DataLoader(
            _grouped(turn_reads.usage_by_turn_ids)
        )
        self.message_usage: DataLoader[uuid.UUID, list[Usage]] = DataLoader(
            _grouped(turn_reads.usage_by_message_ids)
        )
        self.session_summaries: DataLoader[uuid.UUID, list[Summary]] = DataLoader(
            _grouped(summary_reads.summaries_by_session_ids)
        )
        self.summary: DataLoader[uuid.UUID, Summary | None] = DataLoader(
            _by_id(summary_reads.summaries_by_ids)
        )
        self.session_usage: DataLoader[uuid.UUID, UsageTotals] = DataLoader(
            self._session_totals(runtime.report_reads)
        )

    @staticmethod
    def _session_totals(
        reports: ReportReads,
    ) -> Callable[[list[uuid.UUID]], Awaitable[list[UsageTotals]]]:
        async def batch(ids: list[uuid.UUID]) -> list[UsageTotals]:
            found = await reports.usage_totals_by_session_ids(ids)
            return [found.get(session_id, UsageTotals()) for session_id in ids]

        return batch

    @staticmethod
    def _month_spend(reads: ReadStore) -> Callable[[list[uuid.UUID]], Awaitable[list[int]]]:
        async def batch(ids: list[uuid.UUID]) -> list[int]:
            since = month_start(datetime.now(UTC))
            spent = await reads.month_spend_by_user_ids(ids, since=since)
            return [spent[user_id] for user_id in ids]

        return batch

    @staticmethod
    def _rosters(
        reads: ReadStore,
    ) -> Callable[[list[uuid.UUID]], Awaitable[list[list[uuid.UUID]]]]:
        async def batch(ids: list[uuid.UUID]) -> list[list[uuid.UUID]]:
            rosters = await reads.rosters_by_session_ids(ids)
            return [rosters.get(session_id, []) for session_id in ids]

        return batch
