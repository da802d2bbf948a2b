"""Feeds `pantheon_db_pool_connections_in_use` from the engine's pool events."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from infra.telemetry.metrics import PantheonMetrics


def watch_pool(engine: AsyncEngine, metrics: PantheonMetrics) -> None:
    """Counted up and down (not read from the pool on scrape): multiprocess mode has no
    callback gauges, and every process's pool must add up."""

    @event.listens_for(engine.sync_engine, "checkout")
    def _out(*_args: Any) -> None:
        metrics.connection_checked_out()

    @event.listens_for(engine.sync_engine, "checkin")
    def _in(*_args: Any) -> None:
        metrics.connection_checked_in()
