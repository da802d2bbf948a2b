"""Turns: run one, cancel one, read one."""

from __future__ import annotations

import asyncio
import contextlib

import strawberry

from domain.access import can_read_session
from domain.clock import utcnow
from domain.enums import TurnStatus
from domain.errors import NotFound
from domain.turns import service
from domain.turns.events import EventSubscription, SlowConsumer, TurnEventType
from domain.turns.records import Turn
from graph.context import Info
from graph.enums import TurnMode
from graph.ids import uuid_of
from graph.operation_timeout import extend_deadline, lift_deadline
from graph.permissions import IsAuthenticated
from graph.turns.types import TurnNode

# cancelTurn waits this long for the turn to close, so it can answer with the final CANCELLED
# state: on this process through its task, on another through its TurnFinished event (the
# runner there stops on the broker's cancel request, or at its next heartbeat) or, when the
# broker's live stream is lost (Redis down), through the database. A turn whose
# runner died (its lease expired) is answered at once as it stands: RUNNING, cancel requested,
# until the sweeper fails it.
CANCEL_WAIT_SECONDS = 10.0


@strawberry.input
class RunTurnInput:
    session_id: strawberry.ID
    message: str
    mode: TurnMode | None = strawberry.field(default=None, description="default: the session's")
    agent_keys: list[str] | None = strawberry.field(
        default=None, description="MANUAL: instead of @tags"
    )
    idempotency_key: str | None = strawberry.field(
        default=None, description="a retried runTurn with the same key returns the same turn"
    )
    wait_for_completion: bool = True


async def readable_turn(info: Info, raw_id: str) -> Turn:
    """The turn behind a global id if the viewer may read its session; NOT_FOUND otherwise."""
    viewer = info.context.require_viewer()
    turn = await info.context.loaders.turn.load(uuid_of(raw_id, "Turn"))
    if turn is not None:
        session = await info.context.loaders.session.load(turn.session_id)
        if session is not None and can_read_session(viewer, session):
            return turn
    raise NotFound("turn not found")


async def _fresh(info: Info, turn: Turn) -> TurnNode:
    """Re-reads the turn past the request's loader cache: it changed while we waited."""
    rows = await info.context.runtime.turn_reads.turns_by_ids([turn.id])
    return TurnNode.from_record(rows[0] if rows else turn)


@strawberry.type
class TurnQueries:
    @strawberry.field(permission_classes=[IsAuthenticated])
    async def turn(self, info: Info, id: strawberry.ID) -> TurnNode | None:
        return TurnNode.from_record(await readable_turn(info, id))


@strawberry.type
class TurnMutations:
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="CONFLICT while another turn of the session runs",
    )
    async def run_turn(self, info: Info, input: RunTurnInput) -> TurnNode:
        if input.wait_for_completion:
            lift_deadline()  # a turn may take minutes: no operation timeout
        runtime = info.context.runtime
        request = service.RunTurnRequest(
            session_id=uuid_of(input.session_id, "Session"),
            message=input.message,
            mode=input.mode,  # type: ignore[arg-type]
            agent_keys=tuple(input.agent_keys) if input.agent_keys is not None else None,
            idempotency_key=input.idempotency_key,
        )
        outcome = await service.start_turn(
            runtime.new_uow,
            info.context.require_viewer(),
            request,
            runtime.turns,
            runner_id=runtime.supervisor.runner_id,
            limiter=runtime.rate_limiter,
        )
        if outcome.started is not None:
            task = runtime.supervisor.launch(outcome.started)
        else:
            task = runtime.supervisor.task_for(outcome.turn.id)
        if input.wait_for_completion and task is not None:
            # Shielded: a client that disconnects does not cancel its turn.
            await asyncio.shield(task)
        return await _fresh(info, outcome.turn)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated], description="works from any API process"
    )
    async def cancel_turn(self, info: Info, id: strawberry.ID) -> TurnNode:
        runtime = info.context.runtime
        turn = await service.request_cancel(
            runtime.new_uow, info.context.require_viewer(), uuid_of(id, "Turn")
        )
        if turn.status is not TurnStatus.RUNNING:
            return TurnNode.from_record(turn)
        # The wait below is bounded by itself: the operation timeout must not cut it short and
        # answer TIMEOUT for a cancel that is about to be seen.
        extend_deadline(CANCEL_WAIT_SECONDS)
        task = runtime.supervisor.task_for(turn.id)
        if task is not None:  # it runs here: stop it and wait for its close
            runtime.supervisor.cancel_local(turn.id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), CANCEL_WAIT_SECONDS)
        elif turn.lease_expires_at is None or turn.lease_expires_at >= utcnow():
            await _cancel_elsewhere(info, turn)
        # else its runner died (lease expired): answered as it stands; the sweeper fails it
        return await _fresh(info, turn)


async def _cancel_elsewhere(info: Info, turn: Turn) -> None:
    """Asks the process running the turn to stop it (through the broker at once; the DB flag,
    polled by every runner's heartbeat, stays the fallback and the source of truth) and waits
    for it to close: its TurnFinished, or — when the live stream is lost (a broker outage) —
    the database, where the runner's heartbeat closes it after seeing the flag."""
    runtime = info.context.runtime
    live = runtime.broker.subscribe_turn(turn.id, buffer=runtime.limits.subscriber_buffer)
    try:
        await runtime.broker.request_cancel(turn.id)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CANCEL_WAIT_SECONDS):
                if (await _fresh(info, turn)).status is not TurnStatus.RUNNING:
                    return  # it closed before the subscription began
                if await _turn_finished(live):
                    return
                await _closed_in_database(info, turn)
    finally:
        await live.aclose()


async def _turn_finished(live: EventSubscription) -> bool:
    """True once the turn's TurnFinished arrives; False if the live stream ended first."""
    with contextlib.suppress(SlowConsumer):  # EVENTS_UNAVAILABLE included
        async for event in live:
            if event.type is TurnEventType.TURN_FINISHED:
                return True
    return False


async def _closed_in_database(info: Info, turn: Turn) -> None:
    """Polls the turn until it is no longer RUNNING, about twice per heartbeat of its runner."""
    interval = min(max(info.context.runtime.turns.heartbeat_seconds / 2, 0.05), 1.0)
    # The state is in the database, written by another process: there is no event to await.
    while (await _fresh(info, turn)).status is TurnStatus.RUNNING:  # noqa: ASYNC110
        await asyncio.sleep(interval)
