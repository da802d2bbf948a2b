"""Session use cases against the fake unit of work: defaults, validation, ownership, and
running turns."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime

import pytest

from domain.enums import Role, TurnMode
from domain.errors import BadUserInput, Conflict, NotFound
from domain.records import Agent, Session, User
from domain.services.sessions import (
    DEFAULT_TITLE,
    CreateSession,
    SessionLimits,
    UpdateSession,
    create_session,
    delete_session,
    update_session,
)
from tests.fakes.fake_uow import FakeStore, FakeUnitOfWork

LIMITS = SessionLimits(max_title_length=20, max_roster_size=3)
MODEL_ID = uuid.uuid4()


def user(handle: str, role: Role = Role.USER) -> User:
    return User(
        id=uuid.uuid4(),
        handle=handle,
        role=role,
        monthly_budget_nano=None,
        created_at=datetime.now(UTC),
    )


def agent(key: str, *, enabled: bool = True) -> Agent:
    return Agent(
        id=uuid.uuid4(),
        key=key,
        name=key.title(),
        description="",
        system_prompt="be helpful",
        model_id=MODEL_ID,
        enabled=enabled,
    )


@pytest.fixture
def alice() -> User:
    return user("alice")


@pytest.fixture
def bob() -> User:
    return user("bob")


@pytest.fixture
def store(alice: User, bob: User) -> FakeStore:
    agents = [agent("qwen"), agent("deepseek"), agent("writer", enabled=False), agent("researcher")]
    return FakeStore(
        users={alice.id: alice, bob.id: bob}, agents={agent.id: agent for agent in agents}
    )


@pytest.fixture
def uow(store: FakeStore) -> FakeUnitOfWork:
    return FakeUnitOfWork(store)


def keys(store: FakeStore, session_id: uuid.UUID) -> list[str]:
    return [store.agents[agent_id].key for agent_id in store.rosters[session_id]]


async def existing_session(store: FakeStore, owner: User, title: str = "Plan") -> Session:
    """A committed session with the default roster, made through the use case itself."""
    return await create_session(FakeUnitOfWork(store), owner, CreateSession(title=title), LIMITS)


# create


async def test_create_session_defaults_title_mode_and_every_enabled_agent(
    uow: FakeUnitOfWork, store: FakeStore, alice: User
) -> None:
    # when
    session = await create_session(uow, alice, CreateSession(), LIMITS)

    # then
    assert session.title == DEFAULT_TITLE == "New session"
    assert session.default_mode is TurnMode.MANUAL
    assert session.owner_id == alice.id
    assert session.turn_count == 0
    assert keys(store, session.id) == ["qwen", "deepseek", "researcher"]
    assert store.sessions[session.id] == session
    assert uow.commits == 1


async def test_default_roster_is_cut_to_the_roster_limit(
    uow: FakeUnitOfWork, store: FakeStore, alice: User
) -> None:
    limits = SessionLimits(max_title_length=20, max_roster_size=2)

    session = await create_session(uow, alice, CreateSession(), limits)

    assert keys(store, session.id) == ["qwen", "deepseek"]


async def test_create_session_keeps_the_given_order_and_normalizes_keys_and_title(
    uow: FakeUnitOfWork, store: FakeStore, alice: User
) -> None:
    command = CreateSession(
        title="  Trip  ", agent_keys=["Researcher", "qwen"], default_mode=TurnMode.ROUNDTABLE
    )

    session = await create_session(uow, alice, command, LIMITS)

    assert session.title == "Trip"
    assert session.default_mode is TurnMode.ROUNDTABLE
    assert keys(store, session.id) == ["researcher", "qwen"]


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (CreateSession(title="   "), "title must not be empty"),
        (CreateSession(title="x" * 21), "title must be at most 20 characters"),
        (CreateSession(agent_keys=[]), "at least one agent"),
        (CreateSession(agent_keys=["qwen", "nobody"]), "unknown or disabled agents: nobody"),
        (CreateSession(agent_keys=["writer"]), "unknown or disabled agents: writer"),
        (CreateSession(agent_keys=["qwen", "QWEN"]), "lists an agent twice"),
        (CreateSession(agent_keys=["bad key!"]), "agent key 'bad key!'"),
        (CreateSession(agent_keys=["qwen", "deepseek", "researcher", "x"]), "at most 3 agents"),
    ],
)
async def test_invalid_create_is_refused_and_commits_nothing(
    uow: FakeUnitOfWork, store: FakeStore, alice: User, command: CreateSession, message: str
) -> None:
    # given
    before = copy.deepcopy(store)

    # when / then
    with pytest.raises(BadUserInput, match=message):
        await create_session(uow, alice, command, LIMITS)
    assert uow.commits == 0
    assert store == before


async def test_create_without_any_enabled_agent_is_refused(
    uow: FakeUnitOfWork, store: FakeStore, alice: User
) -> None:
    store.agents = {a.id: a for a in (agent("qwen", enabled=False),)}

    with pytest.raises(BadUserInput, match="no agent is enabled"):
        await create_session(uow, alice, CreateSession(), LIMITS)
    assert store.sessions == {}
    assert uow.commits == 0


# update


async def test_owner_changes_title_mode_and_roster(
    uow: FakeUnitOfWork, store: FakeStore, alice: User
) -> None:
    # given
    session = await existing_session(store, alice)

    # when
    command = UpdateSession(
        session_id=session.id,
        title=" Renamed ",
        agent_keys=["deepseek"],
        default_mode=TurnMode.ORCHESTRATOR,
    )
    updated = await update_session(uow, alice, command, LIMITS)

    # then
    assert (updated.title, updated.default_mode) == ("Renamed", TurnMode.ORCHESTRATOR)
    assert store.sessions[session.id] == updated
    assert keys(store, session.id) == ["deepseek"]
    assert uow.commits == 1


async def test_update_without_fields_keeps_title_mode_and_roster(
    uow: FakeUnitOfWork, store: FakeStore, alice: User
) -> None:
    session = await existing_session(store, alice)

    updated = await update_session(uow, alice, UpdateSession(session_id=session.id), LIMITS)

    assert (updated.title, updated.default_mode) == (session.title, session.default_mode)
    assert keys(store, session.id) == ["qwen", "deepseek", "researcher"]


@pytest.mark.parametrize(
    ("title", "agent_keys", "message"),
    [
        ("", None, "title must not be empty"),
        ("New", ["nobody"], "unknown or disabled agents: nobody"),
        ("New", [], "at least one agent"),
    ],
)
async def test_invalid_update_changes_nothing(
    uow: FakeUnitOfWork,
    store: FakeStore,
    alice: User,
    title: str,
    agent_keys: list[str] | None,
    message: str,
) -> None:
    # given
    session = await existing_session(store, alice, title="Keep")
    before = copy.deepcopy(store)

    # when / then
    command = UpdateSession(session_id=session.id, title=title, agent_keys=agent_keys)
    with pytest.raises(BadUserInput, match=message):
        await update_session(uow, alice, command, LIMITS)
    assert uow.commits == 0
    assert store == before


async def test_roster_cannot_change_while_a_turn_runs(
    uow: FakeUnitOfWork, store: FakeStore, alice: User
) -> None:
    # given
    session = await existing_session(store, alice)
    store.running_turns.add(session.id)
    before = copy.deepcopy(store)

    # when / then
    command = UpdateSession(session_id=session.id, title="New", agent_keys=["qwen"])
    with pytest.raises(Conflict, match="roster cannot change while a turn is running"):
        await update_session(uow, alice, command, LIMITS)
    assert uow.commits == 0
    assert store == before


async def test_title_and_mode_can_change_while_a_turn_runs(
    uow: FakeUnitOfWork, store: FakeStore, alice: User
) -> None:
    session = await existing_session(store, alice)
    store.running_turns.add(session.id)

    command = UpdateSession(session_id=session.id, title="New", default_mode=TurnMode.ROUNDTABLE)
    updated = await update_session(uow, alice, command, LIMITS)

    assert (updated.title, updated.default_mode) == ("New", TurnMode.ROUNDTABLE)
    assert uow.commits == 1


# delete


async def test_delete_hides_the_session_but_keeps_its_row(
    uow: FakeUnitOfWork, store: FakeStore, alice: User
) -> None:
    session = await existing_session(store, alice)

    deleted_id = await delete_session(uow, alice, session.id)

    assert deleted_id == session.id
    assert store.sessions[session.id].deleted_at is not None
    assert uow.commits == 1


async def test_delete_is_refused_while_a_turn_runs(
    uow: FakeUnitOfWork, store: FakeStore, alice: User
) -> None:
    session = await existing_session(store, alice)
    store.running_turns.add(session.id)

    with pytest.raises(Conflict, match="a turn of this session is running"):
        await delete_session(uow, alice, session.id)
    assert store.sessions[session.id].deleted_at is None
    assert uow.commits == 0


async def test_a_deleted_session_cannot_be_changed_or_deleted_again(
    uow: FakeUnitOfWork, store: FakeStore, alice: User
) -> None:
    session = await existing_session(store, alice)
    await delete_session(FakeUnitOfWork(store), alice, session.id)

    with pytest.raises(NotFound, match="session not found"):
        await delete_session(uow, alice, session.id)
    with pytest.raises(NotFound, match="session not found"):
        await update_session(uow, alice, UpdateSession(session_id=session.id, title="x"), LIMITS)
    assert uow.commits == 0


# ownership: another user's session answers exactly like a missing one


@pytest.mark.parametrize("role", [Role.USER, Role.ADMIN])
async def test_another_users_session_is_not_found_for_update_and_delete(
    uow: FakeUnitOfWork, store: FakeStore, alice: User, role: Role
) -> None:
    # given
    session = await existing_session(store, alice)
    intruder = user("mallory", role)
    before = copy.deepcopy(store)

    # when / then
    with pytest.raises(NotFound, match="session not found"):
        await update_session(
            uow, intruder, UpdateSession(session_id=session.id, title="mine"), LIMITS
        )
    with pytest.raises(NotFound, match="session not found"):
        await delete_session(uow, intruder, session.id)
    assert uow.commits == 0
    assert store == before


async def test_an_unknown_session_is_not_found(uow: FakeUnitOfWork, alice: User) -> None:
    with pytest.raises(NotFound, match="session not found"):
        await delete_session(uow, alice, uuid.uuid4())
    with pytest.raises(NotFound, match="session not found"):
        await update_session(uow, alice, UpdateSession(session_id=uuid.uuid4()), LIMITS)
