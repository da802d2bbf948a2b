"""Sessions: the caller's list, one session, and changes to them."""

from __future__ import annotations

import strawberry

from domain.access import can_read_session
from domain.errors import NotFound
from domain.pagination import time_id_key
from domain.records import Session
from domain.services import sessions as service
from graph.connections import connection_parts
from graph.context import Info
from graph.enums import TurnMode
from graph.ids import uuid_of
from graph.permissions import IsAuthenticated
from graph.sessions.types import SessionConnection, SessionNode


@strawberry.input
class CreateSessionInput:
    title: str | None = None
    agent_keys: list[str] | None = None
    default_mode: TurnMode | None = None


@strawberry.input
class UpdateSessionInput:
    id: strawberry.ID
    title: str | None = None
    agent_keys: list[str] | None = None
    default_mode: TurnMode | None = None


async def readable_session(info: Info, raw_id: str) -> Session:
    """The session behind a global id, if the viewer may read it; NOT_FOUND otherwise."""
    viewer = info.context.require_viewer()
    session = await info.context.loaders.session.load(uuid_of(raw_id, "Session"))
    if session is None or not can_read_session(viewer, session):
        raise NotFound("session not found")
    return session


def _key(session: Session) -> tuple[str, ...]:
    return time_id_key(session.created_at, session.id)


@strawberry.type
class SessionQueries:
    @strawberry.field(permission_classes=[IsAuthenticated])
    async def session(self, info: Info, id: strawberry.ID) -> SessionNode | None:
        return SessionNode.from_record(await readable_session(info, id))

    @strawberry.field(
        permission_classes=[IsAuthenticated], description="the caller's, newest first"
    )
    async def sessions(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> SessionConnection:
        request = info.context.page(first=first, after=after, last=last, before=before)
        viewer = info.context.require_viewer()
        page = await info.context.runtime.reads.sessions_page(viewer.id, request)
        edges, page_info = connection_parts(page, _key, SessionNode.from_record)
        return SessionConnection(edges=edges, page_info=page_info, total_count=page.total_count)


@strawberry.type
class SessionMutations:
    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def create_session(self, info: Info, input: CreateSessionInput) -> SessionNode:
        command = service.CreateSession(
            title=input.title,
            agent_keys=input.agent_keys,
            default_mode=input.default_mode,  # type: ignore[arg-type]
        )
        session = await service.create_session(
            info.context.runtime.new_uow(),
            info.context.require_viewer(),
            command,
            info.context.runtime.limits.sessions,
        )
        return SessionNode.from_record(session)

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def update_session(self, info: Info, input: UpdateSessionInput) -> SessionNode:
        command = service.UpdateSession(
            session_id=uuid_of(input.id, "Session"),
            title=input.title,
            agent_keys=input.agent_keys,
            default_mode=input.default_mode,  # type: ignore[arg-type]
        )
        session = await service.update_session(
            info.context.runtime.new_uow(),
            info.context.require_viewer(),
            command,
            info.context.runtime.limits.sessions,
        )
        return SessionNode.from_record(session)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="soft delete; CONFLICT while a turn runs; usage is kept",
    )
    async def delete_session(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        await service.delete_session(
            info.context.runtime.new_uow(), info.context.require_viewer(), uuid_of(id, "Session")
        )
        return id
