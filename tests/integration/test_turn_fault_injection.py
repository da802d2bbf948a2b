"""Fault injection: the k-th commit of a turn fails, for every k. Whatever fails, nothing is
half-written: no usage row without the content it paid for, no agent message without its usage,
no turn left RUNNING once recovery has run, and the API never answers 5xx.

The runtime's unit-of-work factory (used by `runTurn`'s first unit) and the supervisor's (used by
the runner) are both replaced with one that wraps each unit of work; the wrapper fails the k-th
`commit()` counted from when it is armed. A dry run of the same turn counts its commits first.
Heartbeats are slowed out of the way (they commit too) and the app's background sweeper is
stopped, so every counted commit is one of the turn's and recovery runs only when the test says.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from domain.enums import AgentMessageStatus, CallKind, TurnStatus
from domain.turns.ports import TurnUnitOfWork
from domain.turns.runner import RunnerDeps
from domain.turns.supervisor import TurnSupervisor
from graph.ids import uuid_of
from graph.runtime import Runtime
from infra.db.engine import Database
from infra.db.models import (
    AgentMessageRow,
    SessionSummaryRow,
    TurnEventRow,
    TurnRow,
    UsageRecordRow,
)
from tests.conftest import Actor, GraphQL
from tests.fakes.openai_script import FakeResponse
from tests.fakes.openai_server import FakeOpenAIServer
from tests.wrapped_uow import WrappedUnitOfWork

LEASE_SECONDS = 0.2
CREATE = "mutation { createSession(input: {}) { id } }"
RUN = """
mutation($input: RunTurnInput!) {
  runTurn(input: $input) { id status messages { status } usage { callKind } }
}"""
PICK_THREE = '{"selected_agent_keys": ["researcher", "writer", "qwen"]}'


class InjectedFailure(OperationalError):
    def __init__(self) -> None:
        super().__init__("COMMIT", None, ConnectionError("injected: the database went away"))


class CommitFaults:
    """Counts commits once armed; the `fail_at`-th one raises (before or after committing)."""

    def __init__(self) -> None:
        self.armed = False
        self.commits = 0
        self.fail_at: int | None = None
        self.after = False  # True: the commit lands, then the error is raised (a lost reply)
        self.failed = False

    def arm(self, fail_at: int | None, *, after: bool = False) -> None:
        self.armed, self.commits, self.fail_at, self.after, self.failed = (
            True,
            0,
            fail_at,
            after,
            False,
        )

    def disarm(self) -> None:
        self.armed = False

    async def commit(self, inner: TurnUnitOfWork) -> None:
        if not self.armed:
            await inner.commit()
            return
        self.commits += 1
        failing = self.commits == self.fail_at
        if failing and not self.after:
            self.failed = True
            raise InjectedFailure
        await inner.commit()
        if failing:
            self.failed = True
            raise InjectedFailure


class FaultyUnitOfWork(WrappedUnitOfWork):
    """Delegates everything to the real unit of work except `commit`."""

    def __init__(self, inner: TurnUnitOfWork, faults: CommitFaults) -> None:
        super().__init__(inner)
        self._faults = faults

    async def commit(self) -> None:
        await self._faults.commit(self._inner)


@pytest.fixture
async def faults(turn_app: Any) -> CommitFaults:
    """Rewires the app: faulty units of work everywhere, no heartbeats, no background sweeper."""
    runtime: Runtime = turn_app.state.runtime
    injected = CommitFaults()
    real_new_uow = runtime.new_uow

    def new_uow() -> TurnUnitOfWork:
        return FaultyUnitOfWork(real_new_uow(), injected)  # type: ignore[return-value]

    settings = dataclasses.replace(
        runtime.turns,
        lease_seconds=LEASE_SECONDS,
        heartbeat_seconds=3600.0,  # no lease renewals (they commit) while a turn runs
        max_running_turns_per_user=100,  # turns left RUNNING must not hide later failures
    )
    old = runtime.supervisor
    await old.shutdown(grace_seconds=0)  # stops its sweeper: recovery runs when we say
    supervisor = TurnSupervisor(
        RunnerDeps(
            new_uow=new_uow,
            gateway=old.deps.gateway,
            publisher=old.deps.publisher,
            settings=settings,
        ),
        runner_id=old.runner_id,
    )
    turn_app.state.runtime = dataclasses.replace(
        runtime, new_uow=new_uow, supervisor=supervisor, turns=settings
    )
    return injected


async def run_turn(client: httpx.AsyncClient, actor: Actor, session: str) -> httpx.Response:
    return await client.post(
        "/graphql",
        json={
            "query": RUN,
            "variables": {"input": {"sessionId": session, "message": "go", "mode": "ORCHESTRATOR"}},
        },
        headers={"Authorization": f"Bearer {actor.token}"},
    )


async def settle(turn_app: Any, database: Database) -> None:
    """Lets every lease expire, then runs recovery once (as any live process would)."""
    async with database.reads() as session:
        running = await session.scalar(
            select(TurnRow.id).where(TurnRow.status == TurnStatus.RUNNING).limit(1)
        )
    if running is not None:
        await asyncio.sleep(LEASE_SECONDS + 0.1)
    await turn_app.state.runtime.supervisor.sweep_once()


async def violations(database: Database) -> list[str]:
    """Every broken all-or-nothing invariant in the database, described."""
    async with database.reads() as session:
        turns = list(await session.scalars(select(TurnRow)))
        messages = list(await session.scalars(select(AgentMessageRow)))
        usage = list(await session.scalars(select(UsageRecordRow)))
        events = list(await session.scalars(select(TurnEventRow)))
    found: list[str] = []
    by_turn = {turn.id: turn for turn in turns}
    metered = {row.agent_message_id for row in usage}
    message_ids = {message.id for message in messages}
    for row in usage:
        if row.call_kind is CallKind.AGENT_RESPONSE and row.agent_message_id is None:
            found.append(f"agent usage row {row.id} without its message")
        # A recovered row meters a call whose runner died before committing what it paid for.
        if (
            row.call_kind is CallKind.MANAGER_ROUTING
            and not by_turn[row.turn_id].routing
            and not row.recovered
        ):
            found.append(f"routing usage row {row.id} without the routing decision")
    for message in messages:
        if message.status is not AgentMessageStatus.CANCELLED and message.id not in metered:
            found.append(f"{message.status} message {message.id} without usage rows")
    for turn in turns:
        if turn.status is TurnStatus.RUNNING:
            found.append(f"turn {turn.index} of {turn.session_id} left RUNNING")
            continue
        finished = [e for e in events if e.turn_id == turn.id and e.event_type == "TurnFinished"]
        if len(finished) != 1:
            found.append(f"turn {turn.id} has {len(finished)} TurnFinished events")
        own = [m for m in messages if m.turn_id == turn.id]
        if turn.status is TurnStatus.COMPLETED:
            chosen = (turn.routing or {}).get("selected_agent_keys", [])
            if len(own) != len(chosen) or any(
                m.status is not AgentMessageStatus.COMPLETED for m in own
            ):
                found.append(f"COMPLETED turn {turn.id} lacks some of its replies")
    for event in events:
        if event.event_type == "AgentFinished" and (
            event.payload.get("message_id") not in {str(m) for m in message_ids}
        ):
            found.append(f"AgentFinished event {event.id} names a message that is not stored")
    return found


async def new_session(gql: GraphQL, actor: Actor) -> str:
    body = await gql(CREATE, as_=actor)
    session_id: str = body["data"]["createSession"]["id"]
    return session_id


def script_three_agents(fake: FakeOpenAIServer) -> None:
    fake.set_default(FakeResponse(content=PICK_THREE), model="manager-mini")
    for model in ("researcher-large", "writer-large", "qwen-plus"):
        fake.set_default(FakeResponse(content=f"reply of {model}"), model=model)


async def count_commits(
    turn_app: Any, turn_gql: GraphQL, faults: CommitFaults, alice: Actor, database: Database
) -> int:
    session = await new_session(turn_gql, alice)
    faults.arm(None)
    response = await run_turn(turn_gql.client, alice, session)  # waits for its runner
    faults.disarm()
    await settle(turn_app, database)
    body = response.json()
    assert body["data"]["runTurn"]["status"] == "COMPLETED", body
    assert len(body["data"]["runTurn"]["messages"]) == 3
    return faults.commits


@pytest.mark.parametrize("after", [False, True], ids=["commit-refused", "reply-lost"])
async def test_a_failing_commit_at_any_step_leaves_nothing_half_written(
    turn_app: Any,
    turn_gql: GraphQL,
    faults: CommitFaults,
    alice: Actor,
    fake_openai: FakeOpenAIServer,
    database: Database,
    after: bool,
) -> None:
    # given: a 3-agent ORCHESTRATOR turn, and how many commits it makes when all goes well
    script_three_agents(fake_openai)
    commits = await count_commits(turn_app, turn_gql, faults, alice, database)
    # start, routing, one per agent, close
    assert commits == 6, commits

    statuses: dict[int, str] = {}
    for k in range(1, commits + 1):
        # when: the k-th commit of a fresh turn fails
        session = await new_session(turn_gql, alice)
        faults.arm(k, after=after)
        response = await run_turn(turn_gql.client, alice, session)  # waits for its runner
        faults.disarm()
        await settle(turn_app, database)

        # then
        assert faults.failed, k
        assert response.status_code < 500, (k, response.status_code, response.text)
        body = response.json()
        if body.get("data"):
            statuses[k] = body["data"]["runTurn"]["status"]
        else:
            assert [e["extensions"]["code"] for e in body["errors"]] == ["INTERNAL_SERVER_ERROR"]
        assert await violations(database) == [], k

    # the turns ended up somewhere definite; the session still takes new turns
    assert set(statuses.values()) <= {"FAILED", "COMPLETED", "RUNNING"}
    final = await run_turn(turn_gql.client, alice, await new_session(turn_gql, alice))
    assert final.json()["data"]["runTurn"]["status"] == "COMPLETED"


async def test_the_injector_really_breaks_commits(
    turn_app: Any,
    turn_gql: GraphQL,
    faults: CommitFaults,
    alice: Actor,
    database: Database,
    fake_openai: FakeOpenAIServer,
) -> None:
    # the first commit (the turn's start) refused: no turn at all
    session = await new_session(turn_gql, alice)
    faults.arm(1)
    response = await run_turn(turn_gql.client, alice, session)
    faults.disarm()

    assert response.status_code == 200
    assert response.json()["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    async with database.reads() as read:
        assert list(await read.scalars(select(TurnRow))) == []
    assert fake_openai.requests() == []


async def test_a_summary_that_cannot_be_stored_still_has_its_calls_metered(
    turn_app: Any,
    turn_gql: GraphQL,
    faults: CommitFaults,
    alice: Actor,
    fake_openai: FakeOpenAIServer,
    database: Database,
) -> None:
    # given: a summary due at the end of every turn, and how many commits such a turn makes
    script_three_agents(fake_openai)
    supervisor = turn_app.state.runtime.supervisor
    supervisor.deps = dataclasses.replace(
        supervisor.deps, settings=dataclasses.replace(supervisor.deps.settings, summary_threshold=1)
    )
    commits = await count_commits(turn_app, turn_gql, faults, alice, database)

    # when: the closing commit, the one that stores the summary, fails; the runner closes again
    # without the summary
    session = await new_session(turn_gql, alice)
    faults.arm(commits)
    response = await run_turn(turn_gql.client, alice, session)
    faults.disarm()
    await settle(turn_app, database)

    # then: the turn closed, no summary was stored, and the summary's served calls are metered
    assert faults.failed
    assert response.json()["data"]["runTurn"]["status"] == "COMPLETED", response.text
    async with database.reads() as read:
        turn_id = await read.scalar(
            select(TurnRow.id).where(TurnRow.session_id == uuid_of(session, "Session"))
        )
        kinds = list(
            await read.scalars(
                select(UsageRecordRow.call_kind).where(
                    UsageRecordRow.turn_id == turn_id, UsageRecordRow.summary_id.is_(None)
                )
            )
        )
        summaries = await read.scalar(
            select(func.count())
            .select_from(SessionSummaryRow)
            .where(SessionSummaryRow.turn_id == turn_id)
        )
    assert summaries == 0
    assert CallKind.SUMMARY_GENERATION in kinds
    assert await violations(database) == []
