"""cancelTurn where it used to miss: while the manager routes, and while Redis is down."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from infra.db.engine import Database
from infra.settings import Settings
from tests.conftest import Actor, GraphQL, running_app
from tests.fakes.openai_script import FakeResponse
from tests.fakes.openai_server import FakeOpenAIServer
from tests.integration.test_redis_broker import two_apps
from tests.integration.test_turn_guarantees import (
    CANCEL,
    RUN,
    TURN,
    _uuid_of_turn,
    finished_events,
    new_session,
    run_input,
    start_with_routing_held,
    turn_row,
    usage_of,
)
from tests.private_redis import PrivateRedis
from tests.turns_support import eventually

pytestmark = pytest.mark.timeout(60)


async def test_cancelling_while_the_manager_routes_stops_its_call_and_meters_it(
    turn_app: Any,
    turn_gql: GraphQL,
    alice: Actor,
    fake_openai: FakeOpenAIServer,
    database: Database,
) -> None:
    # given: an ORCHESTRATOR turn whose manager has not answered (held until cancelled: a call
    # to the fake HTTP server would be ended by its read timeout on a loaded machine)
    held, turn_id = await start_with_routing_held(turn_app, turn_gql, alice)
    await asyncio.wait_for(held.called.wait(), 10)

    # when
    cancelled = await turn_gql(CANCEL, {"id": turn_id}, as_=alice)

    # then: the turn is cancelled, the manager's call was stopped, metered as it ended, and
    # no agent was asked
    assert cancelled["data"]["cancelTurn"]["status"] == "CANCELLED", cancelled
    assert held.cancelled
    assert await usage_of(database, _uuid_of_turn(turn_id)) == [
        ("MANAGER_ROUTING", False, "PROVIDER_CANCELLED")
    ]
    assert fake_openai.requests() == []
    turn = (await turn_gql(TURN, {"id": turn_id}, as_=alice))["data"]["turn"]
    assert (turn["status"], turn["messages"]) == ("CANCELLED", [])
    kinds = [kind for _, kind in await finished_events(database, _uuid_of_turn(turn_id))]
    assert kinds == ["TurnStarted", "TurnFinished"]


async def test_a_cancel_that_waits_past_the_operation_timeout_still_answers_cancelled(
    turn_settings: Settings, alice: Actor
) -> None:
    # given: a short operation timeout, and a manager call that takes longer than it to end
    # once cancelled (as a provider connection may take to close)
    short = turn_settings.model_copy(update={"operation_timeout_seconds": 0.5})
    async with running_app(short) as (app, gql):
        held, turn_id = await start_with_routing_held(app, gql, alice, linger=1.5)
        await asyncio.wait_for(held.called.wait(), 10)

        # when: cancelTurn waits for the turn to close, longer than the operation timeout
        cancelled = await gql(CANCEL, {"id": turn_id}, as_=alice)

    # then: its own bounded wait is not cut short into a TIMEOUT
    assert "errors" not in cancelled, cancelled
    assert cancelled["data"]["cancelTurn"]["status"] == "CANCELLED"


@pytest.mark.redis
async def test_cancelling_on_another_process_while_redis_is_down_still_stops_the_turn(
    turn_settings: Settings,
    private_redis: PrivateRedis,
    alice: Actor,
    fake_openai: FakeOpenAIServer,
    database: Database,
) -> None:
    # given: two API processes on one Redis; a slow turn runs on A
    both = turn_settings.model_copy(
        update={"redis_url": private_redis.url, "redis_key_prefix": "outage"}
    )
    fake_openai.set_default(
        FakeResponse(content=" ".join(f"w{n}" for n in range(100)), token_delay=0.1),
        model="qwen-plus",
    )
    async with two_apps(both) as (_, gql_a, _, gql_b):
        session = await new_session(gql_a, alice)
        started = await gql_a(RUN, run_input(session, waitForCompletion=False), as_=alice)
        turn_id = started["data"]["runTurn"]["id"]

        async def streaming() -> bool:
            return bool(fake_openai.requests(model="qwen-plus"))

        await eventually(streaming)

        # when: Redis goes away, and the cancel is sent to B
        private_redis.kill()
        cancelled = await gql_b(CANCEL, {"id": turn_id}, as_=alice)

        # then: B answers once the turn has stopped (A's heartbeat saw the flag), not before
        assert "errors" not in cancelled, cancelled
        assert cancelled["data"]["cancelTurn"]["status"] == "CANCELLED", cancelled
        assert (await turn_row(database, _uuid_of_turn(turn_id)))[0] == "CANCELLED"
        [call] = fake_openai.requests(model="qwen-plus")
        assert call.disconnected_at is not None
