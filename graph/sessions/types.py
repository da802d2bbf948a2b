from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry import relay

from domain import records
from graph.catalog.types import AgentNode
from graph.connections import Edge, PageInfo, connection_parts
from graph.context import Info
from graph.enums import TurnMode
from graph.loaders import load_existing
from graph.reports.types import UsageTotals
from graph.summaries.types import SessionSummaryNode
from graph.turns.types import TurnConnection, TurnNode
from graph.users.types import UserNode


@strawberry.type(name="Session")
class SessionNode(relay.Node):
    node_id: relay.NodeID[str]
    title: str
    default_mode: TurnMode
    turn_count: int
    created_at: datetime
    updated_at: datetime
    _uuid: strawberry.Private[uuid.UUID]
    _owner_id: strawberry.Private[uuid.UUID]

    @classmethod
    def from_record(cls, session: records.Session) -> SessionNode:
        return cls(
            node_id=str(session.id),
            title=session.title,
            default_mode=session.default_mode,  # type: ignore[arg-type]
            turn_count=session.turn_count,
            created_at=session.created_at,
            updated_at=session.updated_at,
            _uuid=session.id,
            _owner_id=session.owner_id,
        )

    @strawberry.field
    async def owner(self, info: Info) -> UserNode:
        user = await load_existing(info.context.loaders.user, self._owner_id, "session owner")
        return UserNode.from_record(user)

    @strawberry.field(description="the roster, in order; the first enabled one is the default")
    async def agents(self, info: Info) -> list[AgentNode]:
        agent_ids = await info.context.loaders.roster.load(self._uuid)
        agents = await info.context.loaders.agent.load_many(agent_ids)
        return [AgentNode.from_record(agent) for agent in agents if agent is not None]

    @strawberry.field(description="every usage row of the session, whenever it was made")
    async def usage(self, info: Info) -> UsageTotals:
        return UsageTotals.from_domain(await info.context.loaders.session_usage.load(self._uuid))

    @strawberry.field(description="the session's memory: the newest summary, if any")
    async def latest_summary(self, info: Info) -> SessionSummaryNode | None:
        summaries = await info.context.loaders.session_summaries.load(self._uuid)
        return SessionSummaryNode.from_record(summaries[-1]) if summaries else None

    @strawberry.field(description="oldest first")
    async def summaries(self, info: Info) -> list[SessionSummaryNode]:
        summaries = await info.context.loaders.session_summaries.load(self._uuid)
        return [SessionSummaryNode.from_record(summary) for summary in summaries]

    @strawberry.field(description="oldest first, by index")
    async def turns(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> TurnConnection:
        request = info.context.page(first=first, after=after, last=last, before=before)
        page = await info.context.runtime.turn_reads.turns_page(self._uuid, request)
        edges, page_info = connection_parts(page, lambda t: (str(t.index),), TurnNode.from_record)
        return TurnConnection(edges=edges, page_info=page_info, total_count=page.total_count)


@strawberry.type(name="SessionConnection")
class SessionConnection:
    edges: list[Edge[SessionNode]]
    page_info: PageInfo
    total_count: int
