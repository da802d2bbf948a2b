"""cancelTurn where it used to miss: while the manager routes, and while Redis is down."""

from __future__ import annotations

import pytest

from infra.db.engine import Database
from tests.conftest import Actor, GraphQL
from tests.fakes.openai_script import FakeResponse
from tests.fakes.openai_server import FakeOpenAIServer
from tests.integration.test_turn_guarantees import (
    CANCEL,
    RUN,
    TURN,
    _uuid_of_turn,
    finished_events,
    new_session,
    run_input,
    usage_of,
)
from tests.turns_support import MANAGER_MODEL, eventually

pytestmark = pytest.mark.timeout(60)


async def test_cancelling_while_the_manager_routes_stops_its_call_and_meters_it(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer, database: Database
) -> None:
    # given: an ORCHESTRATOR turn whose manager has not answered yet (it would, after its
    # read timeout, be retried: only a stopped call is metered as one cancelled attempt)
    fake_openai.set_default(FakeResponse(content="{}", hang=30.0), model=MANAGER_MODEL)
    session = await new_session(turn_gql, alice)
    started = await turn_gql(
        RUN, run_input(session, mode="ORCHESTRATOR", waitForCompletion=False), as_=alice
    )
    turn_id = started["data"]["runTurn"]["id"]

    async def manager_called() -> bool:
        return bool(fake_openai.requests(model=MANAGER_MODEL))

    await eventually(manager_called)

    # when
    cancelled = await turn_gql(CANCEL, {"id": turn_id}, as_=alice)

    # then: the turn is cancelled, the manager's call was cut (not left to time out and be
    # retried), metered as it ended, and no agent was asked
    assert cancelled["data"]["cancelTurn"]["status"] == "CANCELLED", cancelled
    [call] = fake_openai.requests(model=MANAGER_MODEL)
    assert call.disconnected_at is not None
    assert await usage_of(database, _uuid_of_turn(turn_id)) == [
        ("MANAGER_ROUTING", False, "PROVIDER_CANCELLED")
    ]
    assert [r for r in fake_openai.requests() if r.body["model"] != MANAGER_MODEL] == []
    turn = (await turn_gql(TURN, {"id": turn_id}, as_=alice))["data"]["turn"]
    assert (turn["status"], turn["messages"]) == ("CANCELLED", [])
    kinds = [kind for _, kind in await finished_events(database, _uuid_of_turn(turn_id))]
    assert kinds == ["TurnStarted", "TurnFinished"]
