"""Starting and cancelling turns: the short units of work around the LLM calls (unit #1 of
ARCHITECTURE.md's "One turn, end to end"), and recovery of turns whose runner died."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.access import require_changeable_session
from domain.clock import utcnow
from domain.enums import AgentMessageStatus, TurnMode, TurnStatus
from domain.errors import BadUserInput, BudgetExceeded, Conflict, NotFound, RateLimited
from domain.money import nano_to_usd
from domain.rate_limits import UNLIMITED, LimitName, RateLimiter, TurnCharge
from domain.records import Model, Session, User
from domain.turns import budget, planning, recovery
from domain.turns.context import SessionMemory
from domain.turns.contracts import EMPTY_AUDIT, RosterAgent, RoutingDecision
from domain.turns.events import RetainingPublisher, TurnEvent, TurnEventType
from domain.turns.ports import NewAgentMessage, NewTurn, TurnClose, TurnUnitOfWork
from domain.turns.rate_admission import estimated_turn_tokens
from domain.turns.records import Turn
from domain.turns.settings import TurnSettings

log = logging.getLogger("pantheon.turns")

MAX_IDEMPOTENCY_KEY = 128
# The running-turns cap has no window: it frees when one of the user's turns finishes, usually
# within seconds. Clients should rather wait for a TurnFinished; this is the polling hint.
RUNNING_TURNS_RETRY_SECONDS = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class RunTurnRequest:
    session_id: uuid.UUID
    message: str
    mode: TurnMode | None = None
    agent_keys: tuple[str, ...] | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StartedTurn:
    """Everything the runner needs, read in unit #1 before any LLM call."""

    turn: Turn
    roster: tuple[RosterAgent, ...]
    models: dict[str, Model]
    memory: SessionMemory
    decision: RoutingDecision | None  # None in ORCHESTRATOR mode: the manager decides
    last_sequence: int
    charge: TurnCharge | None = None  # what admission took from the rate limits; settled after
    budget_nano: int | None = None  # the user's budget at admission; None: calls are not capped


@dataclass(frozen=True, slots=True, kw_only=True)
class StartOutcome:
    turn: Turn
    started: StartedTurn | None  # None: an idempotent replay, nothing new to run


async def start_turn(
    new_uow: Callable[[], TurnUnitOfWork],
    actor: User,
    request: RunTurnRequest,
    settings: TurnSettings,
    *,
    runner_id: str,
    limiter: RateLimiter = UNLIMITED,
) -> StartOutcome:
    _check_input(request, settings)
    fingerprint = _fingerprint(request)
    try:
        return await _start(new_uow(), actor, request, settings, fingerprint, runner_id, limiter)
    except Conflict:
        if request.idempotency_key is None:
            raise
        # Two retries with one key raced: the loser returns the winner's turn.
        replay = await _replay(new_uow(), actor, request.idempotency_key, fingerprint)
        if replay is None:
            raise
        return replay


async def _start(
    uow: TurnUnitOfWork,
    actor: User,
    request: RunTurnRequest,
    settings: TurnSettings,
    fingerprint: str,
    runner_id: str,
    limiter: RateLimiter,
) -> StartOutcome:
    async with uow:
        if request.idempotency_key is not None:
            existing = await uow.turns.find_by_idempotency_key(actor.id, request.idempotency_key)
            if existing is not None:
                return _same_request(existing, fingerprint)
        session = await _lock_session(uow, actor, request.session_id)
        mode = request.mode or session.default_mode
        if request.agent_keys is not None and mode is not TurnMode.MANUAL:
            raise BadUserInput("agentKeys can only be given in MANUAL mode")
        roster = await uow.turns.roster(session.id)
        decision = _plan_without_model(mode, request, roster, settings)
        aliases = {agent.model_alias for agent in roster}
        aliases |= {settings.manager_model, settings.summarizer_model}
        models = await uow.turns.models_by_alias(sorted(aliases))
        memory = await uow.turns.memory(session.id)

        await uow.turns.lock_user(actor.id)
        if await uow.sessions.has_running_turn(session.id):
            raise Conflict("a turn of this session is running; wait for it or cancel it")
        running = await uow.turns.running_for_user(actor.id)
        # A turn whose runner died (lease expired) runs no more: it keeps its reservation until
        # the sweeper fails it, but not its place under the cap.
        now = utcnow()
        alive = [t for t in running if t.lease_expires_at is None or t.lease_expires_at > now]
        if len(alive) >= settings.max_running_turns_per_user:
            raise RateLimited(
                f"at most {settings.max_running_turns_per_user} turns may run at once per user",
                limit=LimitName.RUNNING_TURNS.value,
                retry_after_seconds=RUNNING_TURNS_RETRY_SECONDS,
            )
        reserve = _reservation(mode, request, roster, models, memory, settings)
        budget_nano = await _check_budget(uow, actor.id, running, reserve)
        charge = await _check_rate_limits(limiter, actor, decision, roster, models, memory, request)

        index = await uow.turns.next_index(session.id)
        turn = await uow.turns.add(
            NewTurn(
                session_id=session.id,
                user_id=actor.id,
                index=index,
                mode=mode,
                user_message=request.message,
                idempotency_key=request.idempotency_key,
                request_fingerprint=fingerprint,
                runner_id=runner_id,
                lease_expires_at=now + timedelta(seconds=settings.lease_seconds),
                reserved_nano=reserve,
                routing=decision,
                started_at=now,
            )
        )
        events = _opening_events(turn, decision, roster)
        await uow.events.add(events)
        await uow.flush()  # a racing turn or key surfaces here as Conflict
        await uow.commit()
    return StartOutcome(
        turn=turn,
        started=StartedTurn(
            turn=turn,
            roster=tuple(roster),
            models=models,
            memory=memory,
            decision=decision,
            last_sequence=events[-1].sequence,
            charge=charge,
            budget_nano=budget_nano,
        ),
    )


async def _lock_session(uow: TurnUnitOfWork, actor: User, session_id: uuid.UUID) -> Session:
    """The session, locked for the rest of the start unit (before the user row, always in this
    order): a deleteSession racing this start either committed first, and the session is not
    found here, or waits for this unit and then sees its turn running (CONFLICT). Read without
    the lock, both could pass their checks and a turn would run and bill in a deleted session."""
    return require_changeable_session(actor, await uow.sessions.lock(session_id))


def _check_input(request: RunTurnRequest, settings: TurnSettings) -> None:
    if not request.message.strip():
        raise BadUserInput("message must not be empty")
    if len(request.message) > settings.max_message_chars:
        raise BadUserInput(f"message must be at most {settings.max_message_chars} characters")
    key = request.idempotency_key
    if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY and key.isprintable()):
        raise BadUserInput(f"idempotencyKey must be 1-{MAX_IDEMPOTENCY_KEY} printable characters")


def _fingerprint(request: RunTurnRequest) -> str:
    document = {
        "session": str(request.session_id),
        "message": request.message,
        "mode": request.mode.value if request.mode else None,
        "agent_keys": list(request.agent_keys) if request.agent_keys is not None else None,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def _same_request(existing: Turn, fingerprint: str) -> StartOutcome:
    if existing.request_fingerprint != fingerprint:
        raise Conflict("this idempotencyKey was used for a different request")
    return StartOutcome(turn=existing, started=None)


async def _replay(
    uow: TurnUnitOfWork, actor: User, key: str, fingerprint: str
) -> StartOutcome | None:
    async with uow:
        existing = await uow.turns.find_by_idempotency_key(actor.id, key)
    return _same_request(existing, fingerprint) if existing is not None else None


def _plan_without_model(
    mode: TurnMode,
    request: RunTurnRequest,
    roster: Sequence[RosterAgent],
    settings: TurnSettings,
) -> RoutingDecision | None:
    if mode is TurnMode.MANUAL:
        return planning.plan_manual(
            request.message, roster, request.agent_keys, max_agents=settings.max_agents_per_turn
        )
    if mode is TurnMode.ROUNDTABLE:
        return planning.plan_roundtable(roster, max_agents=settings.max_agents_per_turn)
    planning.default_agent(roster)  # the fallback must exist before the manager is asked
    return None


def _reservation(
    mode: TurnMode,
    request: RunTurnRequest,
    roster: Sequence[RosterAgent],
    models: dict[str, Model],
    memory: SessionMemory,
    settings: TurnSettings,
) -> int:
    count = planning.most_agents(
        mode,
        request.message,
        roster,
        request.agent_keys,
        max_agents=settings.max_agents_per_turn,
        manager_cap=settings.manager_cap,
    )
    return budget.expected_turn_nano(
        agents=planning.enabled(roster),
        count=count,
        models=models,
        message=request.message,
        memory=memory,
        policy=settings.policy,
        calibration=settings.calibration,
    )


async def _check_budget(
    uow: TurnUnitOfWork, user_id: uuid.UUID, running: Sequence[Turn], reserve: int
) -> int | None:
    """Refuses a turn whose expected cost the budget cannot hold; returns the budget."""
    user = await uow.users.get(user_id)
    if user is None or user.monthly_budget_nano is None:
        return None
    state = await budget.read_state(uow, user_id, user.monthly_budget_nano, running=running)
    left = state.left_for(None)
    if reserve > left:
        raise BudgetExceeded(
            f"this turn is expected to cost ${nano_to_usd(reserve)}, and the monthly budget has "
            f"${nano_to_usd(max(left, 0))} left"
        )
    return user.monthly_budget_nano


async def _check_rate_limits(
    limiter: RateLimiter,
    actor: User,
    decision: RoutingDecision | None,
    roster: Sequence[RosterAgent],
    models: dict[str, Model],
    memory: SessionMemory,
    request: RunTurnRequest,
) -> TurnCharge:
    """Last of the admission checks, so a turn refused for another reason costs no window: one
    turn and its estimated tokens (the rest is settled after the turn, by the supervisor)."""
    estimate = estimated_turn_tokens(
        decision=decision, roster=roster, models=models, message=request.message, memory=memory
    )
    return await limiter.admit_turn(actor.id, estimated_tokens=estimate)


def _opening_events(
    turn: Turn, decision: RoutingDecision | None, roster: Sequence[RosterAgent]
) -> list[TurnEvent]:
    events = [_event(turn, 1, TurnEventType.TURN_STARTED, {})]
    if decision is not None:
        events += routing_events(turn, decision, roster, first_sequence=2)
    return events


def routing_events(
    turn: Turn, decision: RoutingDecision, roster: Sequence[RosterAgent], *, first_sequence: int
) -> list[TurnEvent]:
    """RoutingDecided, and AgentStarted of the first agent: both durable with the decision."""
    first = decision.selected_agent_keys[0]
    return [
        _event(turn, first_sequence, TurnEventType.ROUTING_DECIDED, decision.to_json()),
        _event(
            turn,
            first_sequence + 1,
            TurnEventType.AGENT_STARTED,
            {"agent_key": first, "position": 1},
        ),
    ]


def _event(turn: Turn, sequence: int, kind: TurnEventType, payload: dict[str, object]) -> TurnEvent:
    return TurnEvent(
        turn_id=turn.id,
        session_id=turn.session_id,
        sequence=sequence,
        type=kind,
        at=utcnow(),
        payload=payload,
    )


async def request_cancel(
    new_uow: Callable[[], TurnUnitOfWork], actor: User, turn_id: uuid.UUID
) -> Turn:
    """Sets the cancel flag any process's runner polls; a finished turn is returned unchanged."""
    async with new_uow() as uow:
        turn = await uow.turns.get(turn_id)
        if turn is None or turn.user_id != actor.id:
            raise NotFound("turn not found")
        if turn.status is TurnStatus.RUNNING and turn.cancel_requested_at is None:
            await uow.turns.request_cancel(turn.id, at=utcnow())
            await uow.commit()
            turn = await _reread(new_uow, turn.id)
    return turn


async def _reread(new_uow: Callable[[], TurnUnitOfWork], turn_id: uuid.UUID) -> Turn:
    async with new_uow() as uow:
        turn = await uow.turns.get(turn_id)
    if turn is None:
        raise NotFound("turn not found")
    return turn


async def fail_expired_turns(
    new_uow: Callable[[], TurnUnitOfWork],
    publisher: RetainingPublisher,
    settings: TurnSettings | None = None,
) -> list[TurnEvent]:
    """Marks turns whose runner's lease expired (its process died) FAILED and writes their
    TurnFinished. A live runner renews its lease, so its turn is never taken. The call the dead
    runner had in flight is metered (domain/turns/recovery.py): an `ESTIMATED` usage row marked
    `recovered`, with a FAILED message (holding what it had streamed) when it was an agent's."""
    settings = settings or TurnSettings()
    finished: list[TurnEvent] = []
    async with new_uow() as uow:
        now = utcnow()
        for turn in await uow.turns.expired_running(now=now, limit=100):
            streamed = recovery.streamed_replies(await publisher.retained(turn.id, after=0))
            facts = await _recovery_facts(uow, turn, settings, streamed)
            closed = await uow.turns.close(
                turn.id,
                TurnClose(
                    status=TurnStatus.FAILED,
                    assistant_output=recovery.assistant_output(facts),
                    context_audit=turn.context_audit or EMPTY_AUDIT,
                    failure_reason="the runner of this turn stopped (lease expired)",
                    finished_at=now,
                ),
            )
            if not closed:  # another sweeper took it between the read and this update
                continue
            # Deltas live only in the broker: number the closing events after them too.
            stored = facts.events[-1].sequence if facts.events else 0
            sequence = max(stored, await publisher.last_sequence(turn.id))
            events: list[TurnEvent] = []
            for call in recovery.calls_in_flight(facts, settings):
                message_id = await _meter_recovered(uow, turn, call, settings, now)
                if message_id is not None:
                    sequence += 1
                    payload: dict[str, object] = {"message_id": str(message_id)}
                    events.append(_event(turn, sequence, TurnEventType.AGENT_FINISHED, payload))
            sequence += 1
            events.append(_event(turn, sequence, TurnEventType.TURN_FINISHED, {"status": "FAILED"}))
            await uow.events.add(events)
            finished.extend(events)
        await uow.commit()
    for event in finished:
        if event.type is TurnEventType.TURN_FINISHED:
            log.warning("turn %s recovered as FAILED: its runner's lease expired", event.turn_id)
    return finished


async def _recovery_facts(
    uow: TurnUnitOfWork, turn: Turn, settings: TurnSettings, streamed: dict[int, str]
) -> recovery.RecoveryFacts:
    roster = await uow.turns.roster(turn.session_id)
    aliases = {a.model_alias for a in roster} | {settings.manager_model, settings.summarizer_model}
    return recovery.RecoveryFacts(
        turn=turn,
        roster=roster,
        models=await uow.turns.models_by_alias(sorted(aliases)),
        memory=await uow.turns.memory(turn.session_id),
        events=await uow.events.of_turn(turn.id),
        messages=await uow.messages.of_turn(turn.id),
        streamed=streamed,
    )


async def _meter_recovered(
    uow: TurnUnitOfWork,
    turn: Turn,
    call: recovery.CallInFlight,
    settings: TurnSettings,
    now: datetime,
) -> uuid.UUID | None:
    """Stages the in-flight call's usage row (and an agent's FAILED message, which it goes
    with); returns the message's id, if any."""
    message_id = None
    if call.agent is not None:
        message = await uow.messages.add(
            NewAgentMessage(
                turn_id=turn.id,
                agent_id=call.agent.id,
                position=call.position,
                status=AgentMessageStatus.FAILED,
                content=call.streamed_text,
                error_code=recovery.RECOVERED_ERROR,
                error_message="the runner of this turn stopped while this agent was answering",
                model_alias=call.model.alias,
                started_at=call.started_at,
                finished_at=now,
            )
        )
        message_id = message.id
    log.warning(
        "turn %s: metering the %s call its dead runner had in flight (estimated)",
        turn.id,
        call.kind,
    )
    await uow.usage.add(
        [recovery.recovered_entry(call, settings.policy)],
        user_id=turn.user_id,
        session_id=turn.session_id,
        turn_id=turn.id,
        agent_message_id=message_id,
        at=now,
    )
    return message_id
