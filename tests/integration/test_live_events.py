"""Live events are complete: a subscriber listening before a turn starts receives every durable
event of it, the start unit's included (TurnStarted first, sequences 1..n without a gap), over
the real GraphQL subscription, on both brokers."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import pytest
from gql import Client, GraphQLRequest

from domain.clock import utcnow
from domain.turns.events import EventBroker, TurnEvent, TurnEventType
from graph.ids import global_id, uuid_of
from infra.settings import Settings
from tests.conftest import Actor, running_app
from tests.db import REDIS_URL_ENV, delete_redis_keys
from tests.fakes.openai_script import FakeResponse
from tests.fakes.openai_server import FakeOpenAIServer
from tests.integration.test_subscriptions import (
    _serve,
    covered,
    new_session,
    script_agents,
    transport,
)
from tests.turns_support import MANAGER_MODEL

pytestmark = pytest.mark.timeout(60)

SESSION_EVENTS = """subscription($id: ID!) {
  sessionEvents(sessionId: $id) {
    __typename turnId sequence
    ... on AgentDelta { firstSequence }
    ... on TurnFinished { turn { status } }
  }
}"""
RUN = """mutation($input: RunTurnInput!) { runTurn(input: $input) { id status } }"""


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def broker_settings(request: pytest.FixtureRequest, turn_settings: Settings) -> Any:
    if request.param == "memory":
        yield turn_settings
        return
    url = os.environ[REDIS_URL_ENV]
    prefix = f"pantheon-test-{uuid.uuid4().hex[:12]}"
    yield turn_settings.model_copy(update={"redis_url": url, "redis_key_prefix": prefix})
    await delete_redis_keys(url, prefix)


class SessionFollower:
    """A `sessionEvents` subscription over WebSocket, known to be live before a turn starts:
    a probe event published straight to the broker has come through it."""

    def __init__(self, url: str, actor: Actor, session_id: str, broker: EventBroker) -> None:
        self.url, self.actor, self.session_id, self.broker = url, actor, session_id, broker
        self.probe_turn = uuid.uuid4()
        self.probe_id = global_id("Turn", self.probe_turn)
        self.received: list[dict[str, Any]] = []
        self.live = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SessionFollower:
        self._task = asyncio.create_task(self._follow())
        async with asyncio.timeout(10):
            while not self.live.is_set():
                await self.broker.publish((self._probe(),))
                try:
                    await asyncio.wait_for(self.live.wait(), 0.2)
                except TimeoutError:
                    continue
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def until_turn_finished(self) -> list[dict[str, Any]]:
        assert self._task is not None
        async with asyncio.timeout(30):
            await self._task
        return self.received

    def _probe(self) -> TurnEvent:
        return TurnEvent(
            turn_id=self.probe_turn,
            session_id=uuid_of(self.session_id, "Session"),
            sequence=1,
            type=TurnEventType.AGENT_DELTA,
            at=utcnow(),
            payload={"agent_key": "probe", "position": 1, "text": "probe"},
        )

    async def _follow(self) -> None:
        async with Client(transport=transport(self.url, self.actor.token)) as client:
            request = GraphQLRequest(SESSION_EVENTS, variable_values={"id": self.session_id})
            async for result in client.subscribe(request):
                event = result["sessionEvents"]
                if event["turnId"] == self.probe_id:
                    self.live.set()
                    continue
                self.received.append(event)
                if event["__typename"] == "TurnFinished":
                    return


@pytest.mark.parametrize("mode", ["ROUNDTABLE", "ORCHESTRATOR"])
async def test_a_subscriber_listening_before_the_turn_gets_every_event_from_turn_started(
    broker_settings: Settings, alice: Actor, fake_openai: FakeOpenAIServer, mode: str
) -> None:
    # given: a session, and a sessionEvents subscriber live before any turn starts
    script_agents(fake_openai, token_delay=0.002)
    picks = '{"selected_agent_keys": ["writer", "qwen"]}'
    fake_openai.set_default(FakeResponse(content=picks), model=MANAGER_MODEL)
    async with running_app(broker_settings) as (app, gql):
        broker: EventBroker = app.state.runtime.broker
        session = await new_session(gql, alice)
        async for url in _serve(app):
            async with SessionFollower(url, alice, session, broker) as follower:
                # when: a turn runs
                run_input = {"sessionId": session, "message": "review the plan", "mode": mode}
                body = await gql(RUN, {"input": run_input}, as_=alice)
                assert "errors" not in body, body
                received = await follower.until_turn_finished()

            # then: the start unit's events came live too; the whole turn is gap-free
            turn_id = body["data"]["runTurn"]["id"]
            assert {e["turnId"] for e in received} == {turn_id}
            sequences = covered(received)
            assert sequences == list(range(1, len(sequences) + 1)), sequences
            kinds = [e["__typename"] for e in received]
            assert kinds[0] == "TurnStarted"
            assert kinds[1:3] == ["RoutingDecided", "AgentStarted"]
            assert received[-1]["turn"]["status"] == "COMPLETED"
            # and the broker holds them for live turnProgress subscribers (what it replays
            # merges with the outbox, then follows live)
            retained = await broker.retained(uuid_of(turn_id, "Turn"), after=0)
            assert [e.sequence for e in retained][:3] == [1, 2, 3]
            assert retained[0].type is TurnEventType.TURN_STARTED
