"""Sessions: create, change, soft-delete. Reading goes through the read store and access rules."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from domain import validation
from domain.access import require_changeable_session
from domain.enums import TurnMode
from domain.errors import BadUserInput, Conflict
from domain.ports import UnitOfWork
from domain.records import Agent, Session, User

DEFAULT_TITLE = "New session"


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionLimits:
    max_title_length: int
    max_roster_size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateSession:
    title: str | None = None
    agent_keys: Sequence[str] | None = None
    default_mode: TurnMode | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateSession:
    session_id: uuid.UUID
    title: str | None = None
    agent_keys: Sequence[str] | None = None
    default_mode: TurnMode | None = None


async def create_session(
    uow: UnitOfWork, actor: User, command: CreateSession, limits: SessionLimits
) -> Session:
    title = _title(command.title if command.title is not None else DEFAULT_TITLE, limits)
    async with uow:
        roster = await _roster(uow, command.agent_keys, limits)
        session = await uow.sessions.add(
            owner_id=actor.id,
            title=title,
            default_mode=command.default_mode or TurnMode.MANUAL,
            agent_ids=[agent.id for agent in roster],
        )
        await uow.commit()
    return session


async def update_session(
    uow: UnitOfWork, actor: User, command: UpdateSession, limits: SessionLimits
) -> Session:
    title = _title(command.title, limits) if command.title is not None else None
    async with uow:
        session = require_changeable_session(actor, await uow.sessions.lock(command.session_id))
        if command.agent_keys is not None:
            if await uow.sessions.has_running_turn(session.id):
                raise Conflict("the roster cannot change while a turn is running")
            roster = await _roster(uow, command.agent_keys, limits)
            await uow.sessions.set_roster(session.id, [agent.id for agent in roster])
        session = await uow.sessions.update(
            session.id, title=title, default_mode=command.default_mode
        )
        await uow.commit()
    return session


async def delete_session(uow: UnitOfWork, actor: User, session_id: uuid.UUID) -> uuid.UUID:
    """Hides the session from its owner; its turns and usage rows stay (billing history)."""
    async with uow:
        # Locked: a turn starting at the same time (which locks the row too) either committed
        # before, and is seen running here, or waits and then finds the session deleted.
        session = require_changeable_session(actor, await uow.sessions.lock(session_id))
        if await uow.sessions.has_running_turn(session.id):
            raise Conflict("a turn of this session is running; cancel it first")
        await uow.sessions.soft_delete(session.id, at=datetime.now(UTC))
        await uow.commit()
    return session.id


def _title(raw: str, limits: SessionLimits) -> str:
    return validation.text(raw, field="title", max_length=limits.max_title_length)


async def _roster(
    uow: UnitOfWork, keys: Sequence[str] | None, limits: SessionLimits
) -> list[Agent]:
    if keys is None:
        agents = await uow.agents.list_enabled()
        if not agents:
            raise BadUserInput("no agent is enabled; an admin must enable one first")
        return agents[: limits.max_roster_size]
    wanted = validation.agent_keys(keys, max_count=limits.max_roster_size)
    found = {agent.key: agent for agent in await uow.agents.get_by_keys(wanted)}
    unusable = [key for key in wanted if key not in found or not found[key].enabled]
    if unusable:
        raise BadUserInput(f"unknown or disabled agents: {', '.join(unusable)}")
    return [found[key] for key in wanted]
