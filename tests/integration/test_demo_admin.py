"""The demo admin of the embedded default's first start (graph/startup.py)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from graph.startup import _demo_admin_once
from infra.db.engine import Database


async def test_two_processes_starting_at_once_make_one_demo_admin_and_both_start(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    # given: an empty database, and two start-ups racing for it (as two `pantheon serve` on
    # one fresh data dir do)
    with caplog.at_level("INFO", logger="pantheon"):
        # when: neither raises (the loser's unique violation used to stop its start-up)
        await asyncio.gather(_demo_admin_once(database), _demo_admin_once(database))

    # then
    async with database.engine.connect() as connection:
        handles = (await connection.execute(text("SELECT handle FROM users"))).scalars().all()
    assert handles == ["admin"]
    assert caplog.text.count("its token (shown only now)") == 1
