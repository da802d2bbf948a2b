from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry import relay

from domain.turns.contracts import EMPTY_AUDIT, RoutingDecision
from domain.turns.records import AgentMessage, Turn
from graph.catalog.types import AgentNode
from graph.connections import Edge, PageInfo
from graph.context import Info
from graph.enums import AgentMessageStatus, TurnMode, TurnStatus
from graph.ids import global_id
from graph.loaders import load_existing
from graph.turns.usage_types import UsageRecordNode

if TYPE_CHECKING:
    from graph.sessions.types import SessionNode


@strawberry.type(name="RoutingDecision")
class RoutingDecisionType:
    mode: TurnMode
    selected_agent_keys: list[str]
    ignored_tags: list[str]
    used_fallback: bool
    fallback_reason: str | None

    @classmethod
    def from_domain(cls, decision: RoutingDecision) -> RoutingDecisionType:
        return cls(
            mode=decision.mode,  # type: ignore[arg-type]
            selected_agent_keys=list(decision.selected_agent_keys),
            ignored_tags=list(decision.ignored_tags),
            used_fallback=decision.used_fallback,
            fallback_reason=decision.fallback_reason,
        )


@strawberry.type
class TurnContextAudit:
    model_aliases: list[str] = strawberry.field(
        description="every dispatched agent's, in dispatch order"
    )
    summary_id: strawberry.ID | None
    history_turns_included: int
    estimated_prompt_tokens: int


@strawberry.type
class AgentError:
    code: str
    message: str


@strawberry.type(name="AgentMessage")
class AgentMessageNode(relay.Node):
    node_id: relay.NodeID[str]
    position: int = strawberry.field(description="1-based dispatch order within the turn")
    status: AgentMessageStatus
    content: str
    error: AgentError | None
    model_alias: str
    started_at: datetime
    finished_at: datetime | None
    _uuid: strawberry.Private[uuid.UUID]
    _agent_id: strawberry.Private[uuid.UUID]

    @classmethod
    def from_record(cls, message: AgentMessage) -> AgentMessageNode:
        error = None
        if message.error_code is not None:
            error = AgentError(code=message.error_code, message=message.error_message or "")
        return cls(
            node_id=str(message.id),
            position=message.position,
            status=message.status,  # type: ignore[arg-type]
            content=message.content,
            error=error,
            model_alias=message.model_alias,
            started_at=message.started_at,
            finished_at=message.finished_at,
            _uuid=message.id,
            _agent_id=message.agent_id,
        )

    @strawberry.field
    async def agent(self, info: Info) -> AgentNode:
        agent = await load_existing(info.context.loaders.agent, self._agent_id, "message agent")
        return AgentNode.from_record(agent)

    @strawberry.field
    async def usage(self, info: Info) -> list[UsageRecordNode]:
        rows = await info.context.loaders.message_usage.load(self._uuid)
        return [UsageRecordNode.from_record(row) for row in rows]


@strawberry.type(name="Turn")
class TurnNode(relay.Node):
    node_id: relay.NodeID[str]
    index: int
    mode: TurnMode
    status: TurnStatus
    user_message: str
    assistant_output: str
    routing: RoutingDecisionType
    context_audit: TurnContextAudit
    summary_triggered: bool
    started_at: datetime
    finished_at: datetime | None
    _uuid: strawberry.Private[uuid.UUID]
    _session_id: strawberry.Private[uuid.UUID]

    @classmethod
    def from_record(cls, turn: Turn) -> TurnNode:
        # Until the manager has answered, an ORCHESTRATOR turn has chosen nobody yet.
        routing = turn.routing or RoutingDecision(mode=turn.mode, selected_agent_keys=())
        audit = turn.context_audit or EMPTY_AUDIT
        return cls(
            node_id=str(turn.id),
            index=turn.index,
            mode=turn.mode,  # type: ignore[arg-type]
            status=turn.status,  # type: ignore[arg-type]
            user_message=turn.user_message,
            assistant_output=turn.assistant_output,
            routing=RoutingDecisionType.from_domain(routing),
            context_audit=TurnContextAudit(
                model_aliases=list(audit.model_aliases),
                summary_id=strawberry.ID(global_id("SessionSummary", audit.summary_id))
                if audit.summary_id
                else None,
                history_turns_included=audit.history_turns_included,
                estimated_prompt_tokens=audit.estimated_prompt_tokens,
            ),
            summary_triggered=turn.summary_triggered,
            started_at=turn.started_at,
            finished_at=turn.finished_at,
            _uuid=turn.id,
            _session_id=turn.session_id,
        )

    @strawberry.field
    async def session(
        self, info: Info
    ) -> Annotated[SessionNode, strawberry.lazy("graph.sessions.types")]:
        from graph.sessions.types import SessionNode

        session = await load_existing(
            info.context.loaders.session, self._session_id, "turn session"
        )
        return SessionNode.from_record(session)

    @strawberry.field(description="one per dispatched agent, in dispatch order")
    async def messages(self, info: Info) -> list[AgentMessageNode]:
        rows = await info.context.loaders.turn_messages.load(self._uuid)
        return [AgentMessageNode.from_record(row) for row in rows]

    @strawberry.field(description="every LLM call attempt of the turn: routing, agents, summary")
    async def usage(self, info: Info) -> list[UsageRecordNode]:
        rows = await info.context.loaders.turn_usage.load(self._uuid)
        return [UsageRecordNode.from_record(row) for row in rows]


@strawberry.type(name="TurnConnection")
class TurnConnection:
    edges: list[Edge[TurnNode]]
    page_info: PageInfo
    total_count: int
