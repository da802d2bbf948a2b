"""`Query.node`: any global id, resolved with the same visibility rules as its own field."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import strawberry
from strawberry import relay

from domain.access import can_read_user
from domain.errors import BadUserInput, NotFound
from graph.catalog.types import AgentNode
from graph.context import Info
from graph.ids import global_id, parse_global_id
from graph.permissions import IsAuthenticated
from graph.sessions.api import readable_session
from graph.sessions.types import SessionNode
from graph.summaries.types import SessionSummaryNode
from graph.turns.api import readable_turn
from graph.turns.types import AgentMessageNode, TurnNode
from graph.turns.usage_types import UsageRecordNode
from graph.users.types import UserNode


async def _user(info: Info, raw_id: str) -> relay.Node:
    viewer = info.context.require_viewer()
    _, user_id = parse_global_id(raw_id)
    user = await info.context.loaders.user.load(user_id)
    if user is None or not can_read_user(viewer, user):
        raise NotFound("user not found")
    return UserNode.from_record(user)


async def _agent(info: Info, raw_id: str) -> relay.Node:
    _, agent_id = parse_global_id(raw_id)
    agent = await info.context.loaders.agent.load(agent_id)
    if agent is None:
        raise NotFound("agent not found")
    return AgentNode.from_record(agent)


async def _session(info: Info, raw_id: str) -> relay.Node:
    return SessionNode.from_record(await readable_session(info, raw_id))


async def _turn(info: Info, raw_id: str) -> relay.Node:
    return TurnNode.from_record(await readable_turn(info, raw_id))


async def _message(info: Info, raw_id: str) -> relay.Node:
    _, message_id = parse_global_id(raw_id)
    message = await info.context.loaders.message.load(message_id)
    if message is None:
        raise NotFound("agent message not found")
    await readable_turn(info, global_id("Turn", message.turn_id))
    return AgentMessageNode.from_record(message)


async def _usage(info: Info, raw_id: str) -> relay.Node:
    viewer = info.context.require_viewer()
    _, usage_id = parse_global_id(raw_id)
    usage = await info.context.loaders.usage.load(usage_id)
    if usage is None or not (viewer.is_admin or usage.user_id == viewer.id):
        raise NotFound("usage record not found")
    return UsageRecordNode.from_record(usage)


async def _summary(info: Info, raw_id: str) -> relay.Node:
    _, summary_id = parse_global_id(raw_id)
    summary = await info.context.loaders.summary.load(summary_id)
    if summary is None:
        raise NotFound("summary not found")
    await readable_session(info, global_id("Session", summary.session_id))
    return SessionSummaryNode.from_record(summary)


_RESOLVERS: dict[str, Callable[[Info, str], Awaitable[relay.Node]]] = {
    "User": _user,
    "Agent": _agent,
    "Session": _session,
    "Turn": _turn,
    "AgentMessage": _message,
    "UsageRecord": _usage,
    "SessionSummary": _summary,
}


@strawberry.type
class NodeQueries:
    @strawberry.field(permission_classes=[IsAuthenticated], description="any object by its id")
    async def node(self, info: Info, id: strawberry.ID) -> relay.Node | None:
        type_name, _ = parse_global_id(id)
        resolve = _RESOLVERS.get(type_name)
        if resolve is None:
            raise BadUserInput(f"no object type {type_name!r}")
        return await resolve(info, id)
