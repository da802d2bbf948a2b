"""The ledger counters are fed by the unit of work only once its commit succeeded, and the pool
gauge follows checkouts: both against the real databases, with the real metrics."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from sqlalchemy.exc import IntegrityError

from domain.clock import utcnow
from domain.enums import BillingCategory, CallKind, TokenSource
from domain.turns.metering import UsageEntry
from infra.db.engine import Database, open_database
from infra.db.uow import SqlUnitOfWork
from infra.telemetry.db_pool import watch_pool
from infra.telemetry.metrics import PantheonMetrics
from tests.metrics_support import Scrape

ENTRY = UsageEntry(
    call_kind=CallKind.AGENT_RESPONSE,
    billing_category=BillingCategory.USER_BILLABLE,
    position=1,
    attempt=1,
    agent_key="qwen",
    provider="fake",
    model_alias="qwen-plus",
    prompt_tokens=11,
    completion_tokens=7,
    cached_tokens=0,
    reasoning_tokens=0,
    token_source=TokenSource.PROVIDER,
    unpriced=False,
    input_nano_per_mtok=1,
    output_nano_per_mtok=1,
    cost_nano=1234,
    latency_ms=5,
    succeeded=True,
    error_code=None,
    provider_request_id=None,
)


def scraped(metrics: PantheonMetrics) -> Scrape:
    return Scrape(generate_latest(metrics.registry).decode())


async def test_a_unit_whose_commit_fails_counts_no_tokens_or_cost(database: Database) -> None:
    metrics = PantheonMetrics()

    async def stage_and_commit() -> None:
        async with SqlUnitOfWork(database.writes, observer=metrics) as uow:
            missing = uuid.uuid4()
            await uow.usage.add(
                [ENTRY], user_id=missing, session_id=missing, turn_id=missing, at=utcnow()
            )
            await uow.commit()

    # when: usage rows staged for a turn that does not exist: the commit fails (foreign keys)
    with pytest.raises(IntegrityError):
        await stage_and_commit()

    # then
    assert scraped(metrics).total("pantheon_llm_tokens_total") == 0
    assert scraped(metrics).total("pantheon_llm_cost_nano_usd_total") == 0


async def test_the_pool_gauge_counts_checked_out_connections(tmp_path: Path) -> None:
    metrics = PantheonMetrics()
    database = open_database(f"sqlite+aiosqlite:///{tmp_path}/pool.db")
    watch_pool(database.engine, metrics)
    try:
        async with database.engine.connect(), database.engine.connect():
            held = scraped(metrics).total("pantheon_db_pool_connections_in_use")
        released = scraped(metrics).total("pantheon_db_pool_connections_in_use")
    finally:
        await database.dispose()
    assert (held, released) == (2, 0)
