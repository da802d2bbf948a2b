"""What a turn guarantees beyond its answer: idempotent retries, budgets refused before any call,
one running turn per session, a per-user cap, cancellation that keeps what was billed, background
turns, and recovery of turns whose runner died (and never of live ones)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select, text

from domain.enums import CallKind, TurnStatus
from domain.llm import Attempt, LLMGateway, LLMRequest
from domain.records import User
from domain.services import sessions as session_service
from domain.turns import service
from domain.turns.events import TurnEvent, TurnEventType
from domain.turns.ports import TurnUnitOfWork
from domain.turns.settings import TurnSettings
from graph.ids import global_id
from infra.db.engine import Database
from infra.db.models import AgentMessageRow, TurnEventRow, TurnRow, UsageRecordRow
from infra.db.uow import SqlUnitOfWork
from infra.llm.recording import CallRecorder
from infra.settings import Settings
from tests.conftest import Actor, GraphQL, error_codes, running_app
from tests.fakes.openai_script import FakeResponse
from tests.fakes.openai_server import FakeOpenAIServer
from tests.turns_support import eventually

CREATE = "mutation($input: CreateSessionInput!) { createSession(input: $input) { id } }"
RUN = """
mutation($input: RunTurnInput!) {
  runTurn(input: $input) {
    id index status
    messages { position status content agent { key } error { code } }
    usage { callKind agentKey attempt succeeded errorCode billingCategory }
  }
}"""
TURN = """
query($id: ID!) {
  turn(id: $id) {
    id index status
    messages { position status content agent { key } error { code } }
    usage { callKind agentKey attempt succeeded errorCode }
  }
}"""
CANCEL = "mutation($id: ID!) { cancelTurn(id: $id) { id status } }"
SET_BUDGET = """
mutation($id: ID!, $budget: Decimal) {
  setUserBudget(userId: $id, monthlyBudgetUsd: $budget) { id }
}"""
SESSION = "query($id: ID!) { session(id: $id) { turnCount } }"

SLOW = FakeResponse(content="one two three four five six seven eight", token_delay=0.1)


# --- helpers --------------------------------------------------------------------------------------


async def new_session(gql: GraphQL, actor: Actor, agents: list[str] | None = None) -> str:
    body = await gql(CREATE, {"input": {"agentKeys": agents}}, as_=actor)
    assert "errors" not in body, body
    session_id: str = body["data"]["createSession"]["id"]
    return session_id


def run_input(session: str, message: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"input": {"sessionId": session, "message": message, **extra}}


async def scalar(database: Database, sql: str, **params: Any) -> Any:
    async with database.engine.connect() as connection:
        return (await connection.execute(text(sql), params)).scalar_one()


async def counts(database: Database) -> dict[str, int]:
    tables = ("turns", "agent_messages", "usage_records", "turn_events")
    return {t: int(await scalar(database, f"SELECT count(*) FROM {t}")) for t in tables}


async def user_record(database: Database, actor: Actor) -> User:
    async with SqlUnitOfWork(database.writes) as uow:
        user = await uow.users.get(actor.uuid)
    assert user is not None
    return user


def new_uow_of(database: Database) -> Callable[[], TurnUnitOfWork]:
    return lambda: SqlUnitOfWork(database.writes)


async def abandoned_turn(
    database: Database, user: User, session_id: uuid.UUID, *, lease_seconds: float, runner: str
) -> uuid.UUID:
    """A turn started through the service by a runner that never runs it (its process died)."""
    outcome = await service.start_turn(
        new_uow_of(database),
        user,
        service.RunTurnRequest(session_id=session_id, message="orphan"),
        TurnSettings(lease_seconds=lease_seconds, max_running_turns_per_user=100),
        runner_id=runner,
    )
    assert outcome.started is not None
    return outcome.turn.id


async def turn_row(database: Database, turn_id: uuid.UUID) -> Any:
    query = select(TurnRow.status, TurnRow.failure_reason, TurnRow.reserved_nano).where(
        TurnRow.id == turn_id
    )
    async with database.reads() as session:
        return (await session.execute(query)).one()


async def finished_events(database: Database, turn_id: uuid.UUID) -> list[tuple[int, str]]:
    query = (
        select(TurnEventRow.sequence, TurnEventRow.event_type)
        .where(TurnEventRow.turn_id == turn_id)
        .order_by(TurnEventRow.sequence)
    )
    async with database.reads() as session:
        return [(int(s), str(t)) for s, t in await session.execute(query)]


# --- idempotency ----------------------------------------------------------------------------------


async def test_a_retried_run_turn_with_the_same_key_is_the_same_turn(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer, database: Database
) -> None:
    # given
    session = await new_session(turn_gql, alice)
    first = await turn_gql(RUN, run_input(session, "hi", idempotencyKey="key-1"), as_=alice)
    assert first["data"]["runTurn"]["status"] == "COMPLETED", first
    requests, written = len(fake_openai.requests()), await counts(database)

    # when
    again = await turn_gql(RUN, run_input(session, "hi", idempotencyKey="key-1"), as_=alice)

    # then
    assert again["data"]["runTurn"] == first["data"]["runTurn"]
    assert len(fake_openai.requests()) == requests == 1
    assert await counts(database) == written


async def test_the_same_key_for_a_different_request_is_a_conflict(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer, database: Database
) -> None:
    session = await new_session(turn_gql, alice)
    other_session = await new_session(turn_gql, alice)
    await turn_gql(RUN, run_input(session, "hi", idempotencyKey="key-1"), as_=alice)
    written = await counts(database)

    changed = [
        run_input(session, "something else", idempotencyKey="key-1"),
        run_input(other_session, "hi", idempotencyKey="key-1"),
        run_input(session, "hi", idempotencyKey="key-1", mode="ROUNDTABLE"),
    ]
    for variables in changed:
        body = await turn_gql(RUN, variables, as_=alice)
        assert error_codes(body) == ["CONFLICT"], variables

    assert len(fake_openai.requests()) == 1
    assert await counts(database) == written


async def test_idempotency_keys_are_per_user(
    turn_gql: GraphQL, alice: Actor, bob: Actor, fake_openai: FakeOpenAIServer
) -> None:
    alices = await new_session(turn_gql, alice)
    bobs = await new_session(turn_gql, bob)

    a = await turn_gql(RUN, run_input(alices, "hi", idempotencyKey="shared"), as_=alice)
    b = await turn_gql(RUN, run_input(bobs, "hi", idempotencyKey="shared"), as_=bob)

    assert a["data"]["runTurn"]["id"] != b["data"]["runTurn"]["id"]
    assert len(fake_openai.requests()) == 2


async def test_concurrent_retries_with_one_key_make_one_turn(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer, database: Database
) -> None:
    fake_openai.set_default(replace(SLOW, token_delay=0.03), model="qwen-plus")
    session = await new_session(turn_gql, alice)

    bodies = await asyncio.gather(
        *(
            turn_gql(RUN, run_input(session, "hi", idempotencyKey="retry"), as_=alice)
            for _ in range(4)
        )
    )

    ids = {body["data"]["runTurn"]["id"] for body in bodies if body.get("data")}
    assert len(ids) == 1, bodies
    assert all("errors" not in body for body in bodies), bodies
    assert len(fake_openai.requests()) == 1
    assert (await counts(database))["turns"] == 1


async def test_concurrent_different_requests_with_one_key_run_one_and_conflict_the_rest(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer, database: Database
) -> None:
    # given: the same key sent for turns on different sessions at once
    sessions = [await new_session(turn_gql, alice) for _ in range(4)]

    # when
    bodies = await asyncio.gather(
        *(
            turn_gql(RUN, run_input(session, "hi", idempotencyKey="shared-key"), as_=alice)
            for session in sessions
        )
    )

    # then: one turn; the others are told the key is taken (never an internal error)
    codes = sorted(code for body in bodies for code in error_codes(body))
    assert codes == ["CONFLICT"] * 3, bodies
    assert len(fake_openai.requests()) == 1
    assert (await counts(database))["turns"] == 1


# --- budgets --------------------------------------------------------------------------------------


async def test_a_turn_that_could_exceed_the_budget_is_refused_before_any_call(
    turn_gql: GraphQL, alice: Actor, admin: Actor, fake_openai: FakeOpenAIServer, database: Database
) -> None:
    # given: a budget smaller than one reply's worst case
    session = await new_session(turn_gql, alice)
    budget = await turn_gql(SET_BUDGET, {"id": alice.id, "budget": "0.0001"}, as_=admin)
    assert "errors" not in budget, budget

    # when
    body = await turn_gql(RUN, run_input(session, "hi"), as_=alice)

    # then
    assert error_codes(body) == ["BUDGET_EXCEEDED"]
    assert "$" in body["errors"][0]["message"]
    assert fake_openai.requests() == []
    assert await counts(database) == dict.fromkeys(
        ("turns", "agent_messages", "usage_records", "turn_events"), 0
    )
    session_now = await turn_gql(SESSION, {"id": session}, as_=alice)
    assert session_now["data"]["session"]["turnCount"] == 0


async def test_a_budget_with_room_lets_the_turn_run(
    turn_gql: GraphQL, alice: Actor, admin: Actor, fake_openai: FakeOpenAIServer
) -> None:
    session = await new_session(turn_gql, alice)
    await turn_gql(SET_BUDGET, {"id": alice.id, "budget": "1"}, as_=admin)

    body = await turn_gql(RUN, run_input(session, "hi", mode="ROUNDTABLE"), as_=alice)

    assert body["data"]["runTurn"]["status"] == "COMPLETED", body


# --- one running turn per session, a cap per user -------------------------------------------------


async def test_concurrent_turns_on_one_session_run_one_and_refuse_the_others(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer, database: Database
) -> None:
    # given: a slow answer, so the first turn is still running when the others arrive
    fake_openai.set_default(SLOW, model="qwen-plus")
    session = await new_session(turn_gql, alice)

    # when
    bodies = await asyncio.gather(
        *(
            turn_gql(RUN, run_input(session, f"msg {n}", waitForCompletion=True), as_=alice)
            for n in range(5)
        )
    )

    # then
    done = [body for body in bodies if "errors" not in body]
    refused = [body for body in bodies if "errors" in body]
    assert len(done) == 1, bodies
    assert done[0]["data"]["runTurn"]["status"] == "COMPLETED"
    assert [error_codes(body) for body in refused] == [["CONFLICT"]] * 4
    assert len(fake_openai.requests()) == 1
    written = await counts(database)
    assert (written["turns"], written["agent_messages"], written["usage_records"]) == (1, 1, 1)
    session_now = await turn_gql(SESSION, {"id": session}, as_=alice)
    assert session_now["data"]["session"]["turnCount"] == 1


@pytest.fixture
async def capped_gql(turn_settings: Settings) -> AsyncIterator[GraphQL]:
    """The turn app with at most one running turn per user (and no sweep due for a minute)."""
    settings = turn_settings.model_copy(
        update={"max_running_turns_per_user": 1, "recovery_interval_seconds": 60.0}
    )
    async with running_app(settings) as (_, gql):
        yield gql


async def test_the_per_user_cap_refuses_a_turn_on_another_session(
    capped_gql: GraphQL, alice: Actor, bob: Actor, fake_openai: FakeOpenAIServer, database: Database
) -> None:
    # given: alice has one turn running
    fake_openai.set_default(SLOW, model="qwen-plus")
    first, second = await new_session(capped_gql, alice), await new_session(capped_gql, alice)
    running = await capped_gql(RUN, run_input(first, waitForCompletion=False), as_=alice)
    assert running["data"]["runTurn"]["status"] == "RUNNING", running

    # when
    refused = await capped_gql(RUN, run_input(second), as_=alice)
    bobs = await capped_gql(
        RUN, run_input(await new_session(capped_gql, bob), waitForCompletion=False), as_=bob
    )

    # then: refused for alice, nothing written for it; bob has his own cap
    assert error_codes(refused) == ["RATE_LIMITED"]
    extensions = refused["errors"][0]["extensions"]
    assert extensions["limit"] == "running_turns"
    assert extensions["retryAfterSeconds"] >= 1
    assert bobs["data"]["runTurn"]["status"] == "RUNNING", bobs
    assert int(await scalar(database, "SELECT count(*) FROM turns")) == 2
    turn_id = running["data"]["runTurn"]["id"]

    async def finished() -> bool:
        body = await capped_gql(TURN, {"id": turn_id}, as_=alice)
        return bool(body["data"]["turn"]["status"] != "RUNNING")

    await eventually(finished)
    fake_openai.set_default(FakeResponse(content="fast"), model="qwen-plus")
    later = await capped_gql(RUN, run_input(second), as_=alice)
    assert later["data"]["runTurn"]["status"] == "COMPLETED", later


async def test_a_turn_whose_runner_died_holds_no_place_under_the_cap(
    capped_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer, database: Database
) -> None:
    # given: alice's only running turn lost its runner (lease expired), not yet swept
    user = await user_record(database, alice)
    dead_session = await new_session(capped_gql, alice)
    other = await new_session(capped_gql, alice)
    await abandoned_turn(
        database, user, _uuid(dead_session), lease_seconds=0.05, runner="dead-runner"
    )
    await asyncio.sleep(0.1)
    fake_openai.set_default(FakeResponse(content="fast"), model="qwen-plus")

    # when
    body = await capped_gql(RUN, run_input(other), as_=alice)

    # then
    assert body["data"]["runTurn"]["status"] == "COMPLETED", body


# --- cancellation and background turns ------------------------------------------------------------


async def start_slow_roundtable(
    gql: GraphQL, actor: Actor, fake_openai: FakeOpenAIServer
) -> dict[str, Any]:
    """Starts (without waiting) a qwen, deepseek, writer roundtable whose second agent streams
    40 words 0.1 s apart; returns the runTurn response."""
    fake_openai.set_default(FakeResponse(content="Qwen answers."), model="qwen-plus")
    fake_openai.set_default(
        FakeResponse(content=" ".join(f"w{n}" for n in range(40)), token_delay=0.1),
        model="deepseek-chat",
    )
    session = await new_session(gql, actor, ["qwen", "deepseek", "writer"])
    started: dict[str, Any] = await gql(
        RUN, run_input(session, mode="ROUNDTABLE", waitForCompletion=False), as_=actor
    )
    return started


async def test_cancelling_during_the_second_agent_keeps_what_was_billed_and_skips_the_rest(
    turn_app: Any,
    turn_gql: GraphQL,
    alice: Actor,
    fake_openai: FakeOpenAIServer,
    database: Database,
) -> None:
    # given: a roundtable whose second agent streams slowly
    started = await start_slow_roundtable(turn_gql, alice, fake_openai)
    assert started["data"]["runTurn"]["status"] == "RUNNING", started
    turn_id = started["data"]["runTurn"]["id"]
    broker = turn_app.state.runtime.supervisor.publisher

    async def deepseek_streaming() -> bool:  # its first deltas are out
        events = await broker.retained(_uuid_of_turn(turn_id), after=0)
        return any(
            e.payload.get("agent_key") == "deepseek" and e.type == "AgentDelta" for e in events
        )

    await eventually(deepseek_streaming)

    # when
    cancelled = await turn_gql(CANCEL, {"id": turn_id}, as_=alice)

    # then
    assert cancelled["data"]["cancelTurn"]["status"] == "CANCELLED", cancelled
    turn = (await turn_gql(TURN, {"id": turn_id}, as_=alice))["data"]["turn"]
    assert turn["status"] == "CANCELLED"
    qwen, deepseek = turn["messages"]
    assert (qwen["status"], deepseek["status"]) == ("COMPLETED", "CANCELLED")
    assert deepseek["error"]["code"] == "CANCELLED"
    assert deepseek["content"].startswith("w0")  # what was streamed before the cancel
    assert [(u["agentKey"], u["attempt"], u["succeeded"]) for u in turn["usage"]] == [
        ("qwen", 1, True),
        ("deepseek", 1, False),
    ]
    assert turn["usage"][1]["errorCode"] == "PROVIDER_CANCELLED"
    assert fake_openai.requests(model="writer-large") == []
    [deepseek_call] = fake_openai.requests(model="deepseek-chat")
    assert deepseek_call.disconnected_at is not None  # the call was stopped, not left running
    cancelling_again = await turn_gql(CANCEL, {"id": turn_id}, as_=alice)
    assert cancelling_again["data"]["cancelTurn"]["status"] == "CANCELLED"
    assert (await counts(database))["usage_records"] == 2


async def test_a_cancel_from_another_process_reaches_the_runner_through_its_heartbeat(
    turn_app: Any,
    turn_gql: GraphQL,
    alice: Actor,
    fake_openai: FakeOpenAIServer,
    database: Database,
) -> None:
    # given: a slow turn running here
    fake_openai.set_default(
        FakeResponse(content=" ".join(f"w{n}" for n in range(40)), token_delay=0.1),
        model="qwen-plus",
    )
    session = await new_session(turn_gql, alice)
    started = await turn_gql(RUN, run_input(session, waitForCompletion=False), as_=alice)
    turn_id = _uuid_of_turn(started["data"]["runTurn"]["id"])

    async def streaming() -> bool:
        return bool(fake_openai.requests(model="qwen-plus"))

    await eventually(streaming)

    # when: another API process sets the cancel flag (nothing is signalled in this process)
    await service.request_cancel(new_uow_of(database), await user_record(database, alice), turn_id)

    # then: the heartbeat (every 0.2 s here) sees it and the runner stops
    async def cancelled() -> bool:
        return bool((await turn_row(database, turn_id))[0] == "CANCELLED")

    await eventually(cancelled, within=3)
    [call] = fake_openai.requests(model="qwen-plus")
    assert call.disconnected_at is not None
    assert (await counts(database))["usage_records"] == 1


async def test_a_heartbeat_just_after_the_turn_closed_is_not_a_lost_lease(
    turn_app: Any,
    turn_gql: GraphQL,
    alice: Actor,
    fake_openai: FakeOpenAIServer,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given: a heartbeat that runs right after the runner committed its close (the turn is no
    # longer RUNNING, but the run has not left the supervisor yet), as happens under load
    supervisor = turn_app.state.runtime.supervisor
    broker = supervisor.publisher
    publish = broker.publish
    beats: list[TurnStatus] = []

    async def publish_then_beat(events: tuple[TurnEvent, ...]) -> None:
        await publish(events)
        if any(e.type == "TurnFinished" for e in events):
            turn_id = events[0].turn_id
            beats.append((await turn_row(database, turn_id))[0])
            await supervisor.beat_once()

    monkeypatch.setattr(broker, "publish", publish_then_beat)
    session = await new_session(turn_gql, alice)

    # when
    with caplog.at_level("WARNING", logger="pantheon.turns.supervisor"):
        turn = await turn_gql(RUN, run_input(session), as_=alice)

    # then: the beat saw a closed turn and left it alone
    assert turn["data"]["runTurn"]["status"] == "COMPLETED", turn
    assert beats == ["COMPLETED"]
    assert "lease lost" not in caplog.text


async def test_a_server_stop_mid_agent_stops_the_call_and_keeps_what_it_spent(
    turn_app: Any,
    turn_gql: GraphQL,
    alice: Actor,
    fake_openai: FakeOpenAIServer,
    database: Database,
) -> None:
    # given: a roundtable whose second agent streams slowly
    started = await start_slow_roundtable(turn_gql, alice, fake_openai)
    turn_id = _uuid_of_turn(started["data"]["runTurn"]["id"])

    async def deepseek_streaming() -> bool:
        return bool(fake_openai.requests(model="deepseek-chat"))

    await eventually(deepseek_streaming)
    await asyncio.sleep(0.3)

    # when: the server shuts down with a grace period shorter than the turn
    await turn_app.state.runtime.supervisor.shutdown(grace_seconds=0.05)

    # then: the turn is closed, the provider call was stopped, and its attempt is metered
    status, reason, _ = await turn_row(database, turn_id)
    assert status == "FAILED"
    assert reason
    assert "interrupted" in reason

    async def call_stopped() -> bool:  # the stream would go on for 4 s more
        [call] = fake_openai.requests(model="deepseek-chat")
        return call.disconnected_at is not None

    await eventually(call_stopped, within=2)
    async with database.reads() as read:
        metered = list(
            await read.scalars(select(UsageRecordRow.agent_key).order_by(UsageRecordRow.position))
        )
        stored = list(
            await read.scalars(select(AgentMessageRow.position).order_by(AgentMessageRow.position))
        )
    assert metered == ["qwen", "deepseek"]
    assert stored == [1, 2]
    assert fake_openai.requests(model="writer-large") == []


class HeldCalls:
    """The runner's LLM gateway (its port), except that every `complete` call of one kind is
    held until it is cancelled, as by a provider that never answers, and reports its attempt
    through `spent` as a provider does (the attempt in progress, cut short: PROVIDER_CANCELLED).

    A server stop must find the call still in flight whatever the machine's load: a call to the
    fake HTTP server that hangs is ended by the provider's own read timeout (2 s here), and on a
    loaded machine the stop came after it (a PROVIDER_TIMEOUT attempt, then a retry)."""

    def __init__(self, inner: LLMGateway, kind: CallKind, *, linger: float = 0.0) -> None:
        self._inner = inner
        self._kind = kind
        self._linger = linger  # how long a cancelled call takes to end (closing its connection)
        self.called = asyncio.Event()
        self.cancelled = False

    async def complete(self, request: LLMRequest, *, spent: list[Attempt] | None = None) -> Any:
        if request.call_kind is not self._kind:
            return await self._inner.complete(request, spent=spent)
        recorder = CallRecorder(request, spent=spent)
        recorder.begin()
        self.called.set()
        try:
            await asyncio.Event().wait()  # never answers; only a cancel ends it
        except asyncio.CancelledError:
            self.cancelled = True
            if self._linger:
                await asyncio.sleep(self._linger)
            raise
        finally:
            recorder.abandon()

    def stream(self, request: LLMRequest) -> Any:
        return self._inner.stream(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def hold_calls(turn_app: Any, kind: CallKind, *, linger: float = 0.0) -> HeldCalls:
    """Holds the calls of `kind` of turns started from now on."""
    supervisor = turn_app.state.runtime.supervisor
    held = HeldCalls(supervisor.deps.gateway, kind, linger=linger)
    supervisor.deps = replace(supervisor.deps, gateway=held)
    return held


async def start_with_routing_held(
    turn_app: Any, gql: GraphQL, actor: Actor, *, linger: float = 0.0
) -> tuple[HeldCalls, str]:
    """Starts an ORCHESTRATOR turn in a new session without waiting for it, its manager's
    routing call held (see `hold_calls`); returns the hold and the turn's id."""
    held = hold_calls(turn_app, CallKind.MANAGER_ROUTING, linger=linger)
    session = await new_session(gql, actor)
    started = await gql(
        RUN, run_input(session, mode="ORCHESTRATOR", waitForCompletion=False), as_=actor
    )
    return held, started["data"]["runTurn"]["id"]


async def stop_server_during(turn_app: Any, held: HeldCalls) -> None:
    """Waits until the held call is under way, then stops the server quickly."""
    await asyncio.wait_for(held.called.wait(), 10)
    await turn_app.state.runtime.supervisor.shutdown(grace_seconds=0.05)


async def usage_of(database: Database, turn_id: uuid.UUID) -> list[tuple[str, bool, str | None]]:
    async with database.reads() as read:
        rows = await read.execute(
            select(UsageRecordRow.call_kind, UsageRecordRow.succeeded, UsageRecordRow.error_code)
            .where(UsageRecordRow.turn_id == turn_id)
            .order_by(UsageRecordRow.created_at, UsageRecordRow.position)
        )
    return [(str(kind), succeeded, code) for kind, succeeded, code in rows]


async def test_a_server_stop_during_the_managers_call_still_meters_it(
    turn_app: Any,
    turn_gql: GraphQL,
    alice: Actor,
    fake_openai: FakeOpenAIServer,
    database: Database,
) -> None:
    # given: an ORCHESTRATOR turn whose manager takes long to answer
    held, started_id = await start_with_routing_held(turn_app, turn_gql, alice)
    turn_id = _uuid_of_turn(started_id)

    # when
    await stop_server_during(turn_app, held)

    # then: the turn closed, and the cut-short call is metered with it (the vendor may bill it)
    status, reason, _ = await turn_row(database, turn_id)
    assert (status, "interrupted" in (reason or "")) == ("FAILED", True)
    assert await usage_of(database, turn_id) == [("MANAGER_ROUTING", False, "PROVIDER_CANCELLED")]


async def test_a_server_stop_during_the_summary_still_meters_its_call(
    turn_app: Any,
    turn_gql: GraphQL,
    alice: Actor,
    fake_openai: FakeOpenAIServer,
    database: Database,
) -> None:
    # given: seven turns, so the eighth makes a summary, whose generation takes long
    session = await new_session(turn_gql, alice)
    for _ in range(7):
        body = await turn_gql(RUN, run_input(session), as_=alice)
        assert body["data"]["runTurn"]["status"] == "COMPLETED", body
    held = hold_calls(turn_app, CallKind.SUMMARY_GENERATION)
    started = await turn_gql(RUN, run_input(session, waitForCompletion=False), as_=alice)
    turn_id = _uuid_of_turn(started["data"]["runTurn"]["id"])

    # when
    await stop_server_during(turn_app, held)

    # then: the agent's call and the cut-short summary call are both metered
    assert await usage_of(database, turn_id) == [
        ("AGENT_RESPONSE", True, None),
        ("SUMMARY_GENERATION", False, "PROVIDER_CANCELLED"),
    ]


def _uuid_of_turn(global_turn_id: str) -> uuid.UUID:
    from graph.ids import uuid_of

    return uuid_of(global_turn_id, "Turn")


async def test_without_waiting_the_turn_is_running_at_once_and_completes_later(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.set_default(SLOW, model="qwen-plus")
    session = await new_session(turn_gql, alice)

    body = await turn_gql(RUN, run_input(session, waitForCompletion=False), as_=alice)

    assert body["data"]["runTurn"]["status"] == "RUNNING", body
    assert body["data"]["runTurn"]["messages"] == []
    turn_id = body["data"]["runTurn"]["id"]

    async def completed() -> dict[str, Any] | None:
        turn = (await turn_gql(TURN, {"id": turn_id}, as_=alice))["data"]["turn"]
        return turn if turn["status"] != "RUNNING" else None

    turn = await eventually(completed)
    assert turn["status"] == "COMPLETED"
    assert turn["messages"][0]["content"] == SLOW.content


# --- recovery of turns whose runner died ----------------------------------------------------------


async def test_the_sweeper_fails_an_expired_foreign_turn_and_never_a_live_one(
    turn_app: Any,
    turn_gql: GraphQL,
    alice: Actor,
    fake_openai: FakeOpenAIServer,
    database: Database,
) -> None:
    # given: a dead runner's turn (lease expired) and a live one elsewhere (fresh lease)
    user = await user_record(database, alice)
    dead_session = await new_session(turn_gql, alice)
    live_session = await new_session(turn_gql, alice)
    dead = await abandoned_turn(
        database, user, _uuid(dead_session), lease_seconds=0.05, runner="dead-runner"
    )
    live = await abandoned_turn(
        database, user, _uuid(live_session), lease_seconds=60, runner="live-elsewhere"
    )
    await asyncio.sleep(0.1)

    # when: this process's sweeper runs (the background one too, every 0.3 s)
    await turn_app.state.runtime.supervisor.sweep_once()
    await asyncio.sleep(0.7)
    await turn_app.state.runtime.supervisor.sweep_once()

    # then
    status, reason, reserved = await turn_row(database, dead)
    assert status == "FAILED"
    assert reason
    assert "lease" in reason
    assert reserved == 0
    after = await finished_events(database, dead)
    # numbered after what the dead runner wrote (TurnStarted, RoutingDecided, AgentStarted);
    # the agent it had started gets its FAILED message (and its call a recovered usage row)
    assert after == [
        (1, "TurnStarted"),
        (2, "RoutingDecided"),
        (3, "AgentStarted"),
        (4, "AgentFinished"),
        (5, "TurnFinished"),
    ]
    assert [t for _, t in after].count("TurnFinished") == 1
    assert (await turn_row(database, live))[0] == "RUNNING"
    assert all(t != "TurnFinished" for _, t in await finished_events(database, live))
    # the API shows it, and the session takes new turns again
    shown = await turn_gql(TURN, {"id": global_id("Turn", dead)}, as_=alice)
    assert shown["data"]["turn"]["status"] == "FAILED"
    again = await turn_gql(RUN, run_input(dead_session), as_=alice)
    assert again["data"]["runTurn"]["status"] == "COMPLETED", again
    blocked = await turn_gql(RUN, run_input(live_session), as_=alice)
    assert error_codes(blocked) == ["CONFLICT"]


async def test_cancelling_a_turn_whose_runner_died_answers_at_once(
    turn_settings: Settings, alice: Actor, database: Database
) -> None:
    # given: a turn whose runner died (its lease expired), and no sweep due for a minute
    settings = turn_settings.model_copy(update={"recovery_interval_seconds": 60.0})
    async with running_app(settings) as (_, gql):
        user = await user_record(database, alice)
        session = await new_session(gql, alice)
        dead = await abandoned_turn(
            database, user, _uuid(session), lease_seconds=0.05, runner="dead-runner"
        )
        await asyncio.sleep(0.1)

        # when
        started = time.monotonic()
        cancelled = await gql(CANCEL, {"id": global_id("Turn", dead)}, as_=alice)

    # then: no wait for a TurnFinished no runner will publish; the sweeper will fail the turn
    assert time.monotonic() - started < 2.0
    assert cancelled["data"]["cancelTurn"]["status"] == "RUNNING", cancelled


def _uuid(global_session_id: str) -> uuid.UUID:
    from graph.ids import uuid_of

    return uuid_of(global_session_id, "Session")


# --- PostgreSQL: budgets and recovery under real concurrency --------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("backend_db", ["postgres"], indirect=True)
async def test_two_sweepers_recover_each_expired_turn_exactly_once(
    alice: Actor, database: Database
) -> None:
    # given: expired turns of a dead runner on six sessions
    user = await user_record(database, alice)
    limits = session_service.SessionLimits(max_title_length=200, max_roster_size=12)
    turns = []
    for number in range(6):
        session = await session_service.create_session(
            SqlUnitOfWork(database.writes),
            user,
            session_service.CreateSession(title=f"s{number}"),
            limits,
        )
        turns.append(
            await abandoned_turn(database, user, session.id, lease_seconds=0.01, runner="dead")
        )
    await asyncio.sleep(0.05)

    class Publisher:
        def __init__(self) -> None:
            self.published: list[TurnEvent] = []

        async def publish(self, events: tuple[TurnEvent, ...]) -> None:
            self.published.extend(events)

        async def last_sequence(self, turn_id: uuid.UUID) -> int:
            return 0

        async def retained(self, turn_id: uuid.UUID, *, after: int) -> list[TurnEvent]:
            return []

    # when: two sweepers (separate connections, as two processes would have) race
    results = await asyncio.gather(
        service.fail_expired_turns(new_uow_of(database), Publisher()),
        service.fail_expired_turns(new_uow_of(database), Publisher()),
    )

    # then
    recovered = [
        event.turn_id
        for result in results
        for event in result
        if event.type is TurnEventType.TURN_FINISHED
    ]
    assert sorted(recovered) == sorted(turns)
    for turn_id in turns:
        assert (await turn_row(database, turn_id))[0] == TurnStatus.FAILED.value
        kinds = [t for _, t in await finished_events(database, turn_id)]
        assert kinds.count("TurnFinished") == 1
