"""Ledger truth: the consistency rules `pantheon ledger check` applies, and the reconciliation of
the ledger's tokens with a provider's usage export (`pantheon ledger reconcile`).

The rules (docs/metering_policy.md, "Checking the ledger"):

- usage without content: an agent reply's row without its message; a successful manager row
  without the turn's routing decision (a `recovered` row meters a call whose content never was);
- content without usage: a COMPLETED agent message with no usage row; a summary whose
  generation (or extraction) did not fall back but has no row of that call;
- a reservation never settled: a turn no longer RUNNING that still holds a reservation;
- a turn left RUNNING past its lease (by more than a grace: a sweeper is about to take it);
- a row whose cost is not its tokens at its own price snapshot (`metering.cost_nano`), or a
  refused row (`NONE`) with tokens, or an unpriced row with a price or a cost.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from domain.enums import TokenSource
from domain.records import Model
from domain.turns.metering import cost_nano


class FindingKind(StrEnum):
    USAGE_WITHOUT_CONTENT = "usage-without-content"
    CONTENT_WITHOUT_USAGE = "content-without-usage"
    UNSETTLED_RESERVATION = "unsettled-reservation"
    RUNNING_PAST_LEASE = "running-past-lease"
    COST_MISMATCH = "cost-mismatch"


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    kind: FindingKind
    subject: str  # "<table> <id>"
    detail: str

    def line(self) -> str:
        return f"{self.kind} {self.subject}: {self.detail}"


@dataclass(frozen=True, slots=True, kw_only=True)
class PricedRow:
    """What a usage row's cost is checked against."""

    id: uuid.UUID
    prompt_tokens: int
    completion_tokens: int
    token_source: TokenSource
    unpriced: bool
    input_nano_per_mtok: int | None
    output_nano_per_mtok: int | None
    cost_nano: int


class LedgerReads(Protocol):
    """The checks' queries (infra/db/ledger_reads.py); each returns findings or rows to judge."""

    async def usage_without_content(self) -> list[Finding]: ...
    async def content_without_usage(self) -> list[Finding]: ...
    async def unsettled_reservations(self) -> list[Finding]: ...
    async def running_past(self, cutoff: datetime) -> list[Finding]: ...
    def priced_rows(self) -> AsyncIterator[Sequence[PricedRow]]:
        """Every usage row, in batches (a large ledger never sits in memory at once)."""
        ...


async def check_ledger(
    reads: LedgerReads, *, now: datetime, lease_grace: timedelta
) -> list[Finding]:
    findings = [
        *await reads.usage_without_content(),
        *await reads.content_without_usage(),
        *await reads.unsettled_reservations(),
        *await reads.running_past(now - lease_grace),
    ]
    async for batch in reads.priced_rows():
        findings.extend(f for f in map(cost_finding, batch) if f is not None)
    return findings


def cost_finding(row: PricedRow) -> Finding | None:
    """The row's cost must be its tokens at its own snapshot, rounded once (metering.py)."""
    subject = f"usage_records {row.id}"
    if row.token_source is TokenSource.NONE and (row.prompt_tokens or row.completion_tokens):
        return Finding(
            kind=FindingKind.COST_MISMATCH,
            subject=subject,
            detail=f"refused (NONE) but has {row.prompt_tokens}+{row.completion_tokens} tokens",
        )
    priced = row.input_nano_per_mtok is not None and row.output_nano_per_mtok is not None
    if row.unpriced == priced:
        return Finding(
            kind=FindingKind.COST_MISMATCH,
            subject=subject,
            detail="unpriced flag disagrees with its price snapshot",
        )
    snapshot = Model(
        id=row.id,
        alias="",
        provider="",
        provider_model="",
        input_nano_per_mtok=row.input_nano_per_mtok,
        output_nano_per_mtok=row.output_nano_per_mtok,
        max_output_tokens=0,
        context_window=0,
    )
    expected = cost_nano(row.prompt_tokens, row.completion_tokens, snapshot)
    if expected == row.cost_nano:
        return None
    return Finding(
        kind=FindingKind.COST_MISMATCH,
        subject=subject,
        detail=f"cost {row.cost_nano} nano-USD, its tokens at its price make {expected}",
    )


# --- reconciliation with a provider's usage export ---------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DayModelTokens:
    """Tokens of one UTC day and one vendor model id (`None`: rows from before it was kept)."""

    day: date
    model: str | None
    input_tokens: int
    output_tokens: int
    requests: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Difference:
    day: date
    model: str | None
    ledger: DayModelTokens | None
    provider: DayModelTokens | None

    def line(self) -> str:
        ours = self.ledger or _zero(self.day, self.model)
        theirs = self.provider or _zero(self.day, self.model)
        parts = [
            f"{label} ledger {mine} provider {other} ({mine - other:+d})"
            for label, mine, other in (
                ("input", ours.input_tokens, theirs.input_tokens),
                ("output", ours.output_tokens, theirs.output_tokens),
            )
        ]
        requests = f"requests ledger {ours.requests} provider {theirs.requests}"
        return f"{self.day.isoformat()} {self.model or '(no vendor model id)'}: " + ", ".join(
            [*parts, requests]
        )


def reconcile(
    ledger: Iterable[DayModelTokens], provider: Iterable[DayModelTokens]
) -> list[Difference]:
    """Every (day, model) whose input or output tokens differ, either side missing included.
    Request counts are shown, not compared: a provider may count refused requests or not."""
    ours = _by_key(ledger)
    theirs = _by_key(provider)
    differences = []
    for key in sorted(ours.keys() | theirs.keys(), key=lambda k: (k[0], k[1] or "")):
        mine, other = ours.get(key), theirs.get(key)
        a, b = mine or _zero(*key), other or _zero(*key)
        if (a.input_tokens, a.output_tokens) != (b.input_tokens, b.output_tokens):
            differences.append(Difference(day=key[0], model=key[1], ledger=mine, provider=other))
    return differences


def _by_key(rows: Iterable[DayModelTokens]) -> dict[tuple[date, str | None], DayModelTokens]:
    """Sums rows of one (day, model): an export may hold several buckets of one day."""
    merged: dict[tuple[date, str | None], DayModelTokens] = {}
    for row in rows:
        key = (row.day, row.model)
        seen = merged.get(key)
        merged[key] = (
            row
            if seen is None
            else DayModelTokens(
                day=row.day,
                model=row.model,
                input_tokens=seen.input_tokens + row.input_tokens,
                output_tokens=seen.output_tokens + row.output_tokens,
                requests=seen.requests + row.requests,
            )
        )
    return merged


def _zero(day: date, model: str | None) -> DayModelTokens:
    return DayModelTokens(day=day, model=model, input_tokens=0, output_tokens=0, requests=0)
