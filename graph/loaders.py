"""Per-request dataloaders, one per relation. Each batch runs in its own short DB session
(the read store's), so concurrently resolving fields never share a session."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from functools import cached_property
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
    """Each loader is made on first use: subscriptions renew the loaders for every event they
    emit, and most events (deltas) read nothing. Made inside the request's event loop, since
    aiodataloader binds the running loop at creation."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    @cached_property
    def user(self) -> DataLoader[uuid.UUID, User | None]:
        return DataLoader(_by_id(self._runtime.reads.users_by_ids))

    @cached_property
    def model(self) -> DataLoader[uuid.UUID, Model | None]:
        return DataLoader(_by_id(self._runtime.reads.models_by_ids))

    @cached_property
    def agent(self) -> DataLoader[uuid.UUID, Agent | None]:
        return DataLoader(_by_id(self._runtime.reads.agents_by_ids))

    @cached_property
    def session(self) -> DataLoader[uuid.UUID, Session | None]:
        return DataLoader(_by_id(self._runtime.reads.sessions_by_ids))

    @cached_property
    def roster(self) -> DataLoader[uuid.UUID, list[uuid.UUID]]:
        return DataLoader(self._rosters(self._runtime.reads))

    @cached_property
    def month_spend(self) -> DataLoader[uuid.UUID, int]:
        return DataLoader(self._month_spend(self._runtime.reads))

    @cached_property
    def turn(self) -> DataLoader[uuid.UUID, Turn | None]:
        return DataLoader(_by_id(self._runtime.turn_reads.turns_by_ids))

    @cached_property
    def message(self) -> DataLoader[uuid.UUID, AgentMessage | None]:
        return DataLoader(_by_id(self._runtime.turn_reads.messages_by_ids))

    @cached_property
    def usage(self) -> DataLoader[uuid.UUID, Usage | None]:
        return DataLoader(_by_id(self._runtime.turn_reads.usage_by_ids))

    @cached_property
    def turn_messages(self) -> DataLoader[uuid.UUID, list[AgentMessage]]:
        return DataLoader(_grouped(self._runtime.turn_reads.messages_by_turn_ids))

    @cached_property
    def turn_usage(self) -> DataLoader[uuid.UUID, list[Usage]]:
        return DataLoader(_grouped(self._runtime.turn_reads.usage_by_turn_ids))

    @cached_property
    def message_usage(self) -> DataLoader[uuid.UUID, list[Usage]]:
        return DataLoader(_grouped(self._runtime.turn_reads.usage_by_message_ids))

    @cached_property
    def session_summaries(self) -> DataLoader[uuid.UUID, list[Summary]]:
        return DataLoader(_grouped(self._runtime.summary_reads.summaries_by_session_ids))

    @cached_property
    def summary(self) -> DataLoader[uuid.UUID, Summary | None]:
        return DataLoader(_by_id(self._runtime.summary_reads.summaries_by_ids))

    @cached_property
    def session_usage(self) -> DataLoader[uuid.UUID, UsageTotals]:
        return DataLoader(self._session_totals(self._runtime.report_reads))

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
