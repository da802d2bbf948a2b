"""Runs a started turn: routing (ORCHESTRATOR), then each agent in sequence, then the close.

Each step ends in one short unit of work that stages the fact, its usage rows and its event rows
and commits them together; the commit publishes its events (the unit of work is the outbox
relay), and the runner publishes only deltas, which are not durable. No transaction is open while
a model is called. A failing agent becomes a FAILED message and the sequence goes on; a cancel
request stops the current call and skips the rest; the closing unit is shielded from cancellation
so what was billed is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.clock import utcnow
from domain.enums import AgentMessageStatus, CallKind, TurnStatus
from domain.llm import (
    Attempt,
    LLMCallError,
    LLMErrorCode,
    LLMGateway,
    LLMResult,
    LLMStream,
    TextDelta,
)
from domain.rate_limits import UNLIMITED, RateLimiter
from domain.records import Model
from domain.summaries.pipeline import SummaryOutcome, plan_summary, summarize
from domain.turns import routing
from domain.turns.budget_guard import TurnBudget
from domain.turns.context import AgentPrompt, EarlierReply, PastTurn, build_prompt
from domain.turns.contracts import ContextAudit, RosterAgent, RoutingDecision
from domain.turns.deltas import DeltaPublisher
from domain.turns.events import RetainingPublisher, TurnEvent, TurnEventType
from domain.turns.metering import UsageEntry, usage_entries
from domain.turns.observer import NO_TURN_OBSERVER, TurnObserver
from domain.turns.ports import NewAgentMessage, TurnClose, TurnUnitOfWork
from domain.turns.service import StartedTurn, routing_events
from domain.turns.settings import TurnSettings
from domain.turns.tracing import NO_SPAN, NO_TRACING, TurnSpan, TurnTracer

log = logging.getLogger("pantheon.turns.runner")


@dataclass(frozen=True, slots=True, kw_only=True)
class RunnerDeps:
    new_uow: Callable[[], TurnUnitOfWork]
    gateway: LLMGateway
    publisher: RetainingPublisher
    settings: TurnSettings
    rate_limiter: RateLimiter = UNLIMITED  # settles each turn's tokens after it
    observer: TurnObserver = NO_TURN_OBSERVER  # turn counts and durations (metrics)
    tracer: TurnTracer = NO_TRACING  # the turn's trace span (domain/turns/tracing.py)


@dataclass(slots=True)
class _CallInFlight:
    """A manager or summary call under way; if a server stop or an error cuts it short, the
    closing unit meters what it spent."""

    kind: CallKind
    position: int
    model: Model
    spent: list[Attempt] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class _AgentOutcome:
    agent: RosterAgent
    model: Model
    position: int
    status: AgentMessageStatus
    text: str
    attempts: tuple[Attempt, ...]
    error_code: str | None = None
    error_message: str | None = None
    prompt: AgentPrompt | None = None
    started_at: datetime = field(default_factory=utcnow)


class TurnRun:
    """One execution of one started turn; `cancel` is set by cancelTurn or the heartbeat."""

    def __init__(
        self,
        deps: RunnerDeps,
        started: StartedTurn,
        cancel: asyncio.Event,
        *,
        span: TurnSpan = NO_SPAN,
    ) -> None:
        self.deps = deps
        self.span = span
        self.started = started
        self.turn = started.turn
        self.cancel = cancel
        self.sequence = started.last_sequence
        self.outcomes: list[_AgentOutcome] = []
        self.interrupted: _AgentOutcome | None = None  # the agent a server stop cut short
        # Set as closing begins: from then on this run decides the turn's end itself, so a
        # heartbeat finding the turn no longer RUNNING is not a lost lease.
        self.closing = False
        self.closed_status: TurnStatus | None = None  # set once the closing unit committed
        self.calls_in_flight: list[_CallInFlight] = []
        self.tokens_spent = 0  # provider tokens of every usage row staged, for the rate limit
        self.budget = TurnBudget(
            new_uow=deps.new_uow,
            settings=deps.settings,
            user_id=self.turn.user_id,
            turn_id=self.turn.id,
            budget_nano=started.budget_nano,
        )
        self.cancelled_while_routing = False

    async def run(self) -> None:
        pending: _AgentOutcome | None = None
        summary: SummaryOutcome | None = None
        try:
            decision = self.started.decision or await self._route()
            if decision is not None:  # None: cancelled while the manager was routing
                pending = await self._run_agents(decision)
                if pending is None:  # not cancelled: the summary is the turn's last step
                    summary = await self._summarize()
        except asyncio.CancelledError:
            pending = pending or self.interrupted
            await asyncio.shield(self._close(pending, failure="interrupted: the server stopped"))
            raise
        except Exception:
            log.exception("turn %s failed unexpectedly", self.turn.id)
            await asyncio.shield(self._close(pending, failure="internal error while running"))
            return
        await asyncio.shield(self._close(pending, failure=None, summary=summary))

    # --- summary ---------------------------------------------------------------------------

    async def _summarize(self) -> SummaryOutcome | None:
        """Runs the two-stage summary when it is due. Its failures never fail the turn."""
        settings = self.deps.settings
        current = PastTurn(
            index=self.turn.index,
            user_message=self.turn.user_message,
            assistant_output=_assistant_output(self.outcomes),
        )
        plan = plan_summary(self.started.memory, current, threshold=settings.summary_threshold)
        if plan is None:
            return None
        model = self.started.models[settings.summarizer_model]
        calls = [
            self._call_in_flight(CallKind.SUMMARY_GENERATION, 1, model),
            self._call_in_flight(CallKind.SUMMARY_EXTRACTION, 2, model),
        ]
        try:
            outcome = await summarize(
                self.deps.gateway, plan, model, spent={call.kind: call.spent for call in calls}
            )
        except Exception:  # what the calls spent stays in flight: the closing unit meters it
            log.exception("summary of turn %s failed; the next turn retries it", self.turn.id)
            return None
        self._learn(model, outcome.generated.attempts)
        self._learn(model, outcome.extracted.attempts)
        for call in calls:  # metered with the summary it paid for
            self.calls_in_flight.remove(call)
        return outcome

    # --- routing ---------------------------------------------------------------------------

    async def _route(self) -> RoutingDecision | None:
        """Asks the manager; None when the turn was cancelled first (the call is stopped, and
        what it spent stays in flight for the closing unit to meter)."""
        manager = self.started.models[self.deps.settings.manager_model]
        call = self._call_in_flight(CallKind.MANAGER_ROUTING, 0, manager)
        routed = asyncio.ensure_future(
            routing.route(
                self.deps.gateway,
                self.turn.user_message,
                self.started.roster,
                manager,
                cap=self.deps.settings.manager_cap,
                spent=call.spent,
            )
        )
        if not await self._unless_cancelled(routed):
            self.cancelled_while_routing = True
            return None
        outcome = routed.result()
        self.calls_in_flight.remove(call)  # metered below, with the decision
        self._learn(manager, outcome.attempts)
        entries = usage_entries(
            outcome.attempts,
            call_kind=CallKind.MANAGER_ROUTING,
            position=0,
            model=manager,
            agent_key=None,
            policy=self.deps.settings.policy,
            calibration=self.deps.settings.calibration,
        )
        events = routing_events(
            self.turn, outcome.decision, self.started.roster, first_sequence=self.sequence + 1
        )
        self.sequence = events[-1].sequence
        async with self.deps.new_uow() as uow:
            await uow.turns.set_routing(self.turn.id, outcome.decision)
            await self._stage_usage(uow, entries)
            await uow.events.add(events)
            await uow.commit()  # publishes the events
        return outcome.decision

    async def _unless_cancelled(self, call: asyncio.Future[Any]) -> bool:
        """Waits for `call` unless a cancel request comes first, as an agent's call does: then
        it stops the call (its recorder notes the cut-short attempt) and returns False. A
        server stop stops the call too before it propagates."""
        cancelled = asyncio.ensure_future(self.cancel.wait())
        try:
            await asyncio.wait({call, cancelled}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await _stop(call)
            raise
        finally:
            cancelled.cancel()
        if call.done():
            return True
        await _stop(call)
        return False

    # --- agents ----------------------------------------------------------------------------

    async def _run_agents(self, decision: RoutingDecision) -> _AgentOutcome | None:
        """Runs the plan; returns the outcome the closing unit must still store (a cancelled
        agent), or None."""
        by_key = {agent.key: agent for agent in self.started.roster}
        plan = [by_key[key] for key in decision.selected_agent_keys]
        self.span.agents_dispatched(len(plan))
        for position, agent in enumerate(plan, start=1):
            model = self.started.models[agent.model_alias]
            if self.cancel.is_set():
                return self._skipped(agent, model, position)
            outcome = await self._call_agent(agent, model, position)
            self._learn(
                model, outcome.attempts, completions=not self.budget.cut_short(outcome.attempts)
            )
            if outcome.status is AgentMessageStatus.CANCELLED:
                return outcome
            upcoming = plan[position] if position < len(plan) else None
            await self._store_agent(outcome, upcoming)
        return None

    async def _call_agent(self, agent: RosterAgent, model: Model, position: int) -> _AgentOutcome:
        earlier = [
            EarlierReply(agent_name=o.agent.name, text=o.text)
            for o in self.outcomes
            if o.status is AgentMessageStatus.COMPLETED
        ]
        prompt = build_prompt(
            agent=agent,
            model=model,
            memory=self.started.memory,
            message=self.turn.user_message,
            earlier=earlier,
        )
        outcome = _AgentOutcome(
            agent=agent,
            model=model,
            position=position,
            status=AgentMessageStatus.COMPLETED,
            text="",
            attempts=(),
            prompt=prompt,
        )
        request = await self.budget.capped(prompt, model)
        if request is None:
            return self._refused_by_budget(outcome)
        stream = self.deps.gateway.stream(request)
        parts: list[str] = []
        deltas = self._deltas(agent, position)
        consume = asyncio.ensure_future(self._consume(stream, deltas, parts))
        cancelled = asyncio.ensure_future(self.cancel.wait())
        try:
            await asyncio.wait({consume, cancelled}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # The server is stopping: stop the call too (never leave it streaming), and leave
            # what it spent to the closing unit, which meters it with its message.
            await _stop(consume)
            outcome.status = AgentMessageStatus.FAILED
            outcome.text = "".join(parts)
            outcome.attempts = stream.attempts
            outcome.error_code = "INTERRUPTED"
            outcome.error_message = "the server stopped while this agent was answering"
            self.interrupted = outcome
            raise
        finally:
            cancelled.cancel()
        if not consume.done():  # a cancel request arrived first: stop the call now
            await _stop(consume)
            outcome.status = AgentMessageStatus.CANCELLED
            outcome.text = "".join(parts)
            outcome.attempts = stream.attempts
            outcome.error_code, outcome.error_message = "CANCELLED", "the turn was cancelled"
            return outcome
        try:
            result = consume.result()
        except LLMCallError as error:
            outcome.status = AgentMessageStatus.FAILED
            outcome.text = error.partial_text
            outcome.attempts = error.attempts
            outcome.error_code, outcome.error_message = str(error.code), error.message
            log.warning("agent %s failed in turn %s: %s", agent.key, self.turn.id, error.code)
            return outcome
        outcome.text = result.text
        outcome.attempts = result.attempts
        return outcome

    async def _consume(
        self, stream: LLMStream, deltas: DeltaPublisher, parts: list[str]
    ) -> LLMResult:
        result: LLMResult | None = None
        try:
            async with contextlib.aclosing(stream):
                async for item in stream:
                    if isinstance(item, TextDelta):
                        parts.append(item.text)
                        deltas.add(item.text)
                    else:
                        result = item
        finally:  # however the call ends, what was read goes out before the turn's next event
            await deltas.flush()
        if result is None:
            raise LLMCallError(
                LLMErrorCode.PROVIDER_BAD_RESPONSE,
                "the stream ended without a result",
                attempts=stream.attempts,
                partial_text="".join(parts),
            )
        return result

    def _deltas(self, agent: RosterAgent, position: int) -> DeltaPublisher:
        def delta(text: str) -> TurnEvent:
            payload = {"agent_key": agent.key, "position": position, "text": text}
            return self._event(TurnEventType.AGENT_DELTA, payload)

        return DeltaPublisher(self._publish_deltas, delta)

    def _skipped(self, agent: RosterAgent, model: Model, position: int) -> _AgentOutcome:
        return _AgentOutcome(
            agent=agent,
            model=model,
            position=position,
            status=AgentMessageStatus.CANCELLED,
            text="",
            attempts=(),
            error_code="CANCELLED",
            error_message="the turn was cancelled before this agent answered",
        )

    async def _store_agent(self, outcome: _AgentOutcome, upcoming: RosterAgent | None) -> None:
        async with self.deps.new_uow() as uow:
            message_id = await self._stage_message(uow, outcome)
            events = [self._event(TurnEventType.AGENT_FINISHED, {"message_id": str(message_id)})]
            if upcoming is not None:
                events.append(
                    self._event(
                        TurnEventType.AGENT_STARTED,
                        {"agent_key": upcoming.key, "position": outcome.position + 1},
                    )
                )
            await uow.events.add(events)
            await uow.commit()  # publishes the events
        self.outcomes.append(outcome)

    # --- closing ---------------------------------------------------------------------------

    async def _close(
        self,
        pending: _AgentOutcome | None,
        *,
        failure: str | None,
        summary: SummaryOutcome | None = None,
    ) -> None:
        self.closing = True
        if pending is not None:
            self.outcomes.append(pending)
        cancelled = self.cancelled_while_routing or (
            pending is not None and pending.status is AgentMessageStatus.CANCELLED
        )
        status = _status(self.outcomes, cancelled=cancelled, failure=failure)
        self.span.finished(status)
        before = self.sequence
        try:
            await self._write_close(pending, status, failure, summary)
        except Exception:
            if summary is None:
                # Left RUNNING: its lease expires and any live process marks it FAILED.
                log.exception("could not close turn %s; recovery will fail it", self.turn.id)
                return
            # A summary that cannot be stored must not cost the turn its close. Its calls were
            # served (a vendor bills them), so their usage rows are kept, without a summary to
            # point at; the next turn retries the summary, and meters its own calls.
            log.exception("could not store the summary of turn %s; closing without", self.turn.id)
            self.sequence = before
            await self._close_without_summary(pending, status, failure, unstored=summary)

    async def _close_without_summary(
        self,
        pending: _AgentOutcome | None,
        status: TurnStatus,
        failure: str | None,
        *,
        unstored: SummaryOutcome,
    ) -> None:
        try:
            await self._write_close(pending, status, failure, None, unstored=unstored)
        except Exception:
            log.exception("could not close turn %s; recovery will fail it", self.turn.id)

    async def _write_close(
        self,
        pending: _AgentOutcome | None,
        status: TurnStatus,
        failure: str | None,
        summary: SummaryOutcome | None,
        *,
        unstored: SummaryOutcome | None = None,
    ) -> list[TurnEvent]:
        """The closing unit; returns its events, published by its commit (none if the turn
        was taken). `unstored`: a summary that could not be stored, whose calls are metered."""
        close = TurnClose(
            status=status,
            assistant_output=_assistant_output(self.outcomes),
            context_audit=_audit(self.outcomes),
            failure_reason=failure,
            finished_at=utcnow(),
            summary_triggered=summary is not None,
        )
        events: list[TurnEvent] = []
        async with self.deps.new_uow() as uow:
            if pending is not None:
                message_id = await self._stage_message(uow, pending)
                events.append(
                    self._event(TurnEventType.AGENT_FINISHED, {"message_id": str(message_id)})
                )
            for call in self.calls_in_flight:
                await self._stage_usage(uow, self._usage_of(call))
            if summary is not None:
                summary_id = await self._stage_summary(uow, summary)
                events.append(
                    self._event(TurnEventType.SUMMARY_UPDATED, {"summary_id": str(summary_id)})
                )
            if unstored is not None:
                await self._stage_summary_usage(uow, unstored, summary_id=None)
            events += await self._budget_warning(uow)
            if not await uow.turns.close(self.turn.id, close):
                log.warning("turn %s was closed elsewhere; dropping this close", self.turn.id)
                return []
            events.append(self._event(TurnEventType.TURN_FINISHED, {"status": status.value}))
            await uow.events.add(events)
            await uow.commit()  # publishes the events
        self.closed_status = status
        return events

    async def _stage_summary(self, uow: TurnUnitOfWork, outcome: SummaryOutcome) -> uuid.UUID:
        stored = await uow.summaries.add(
            session_id=self.turn.session_id,
            turn_id=self.turn.id,
            covers_from_turn=outcome.plan.covers_from_turn,
            covers_through_turn=outcome.plan.covers_through_turn,
            text=outcome.generated.text,
            structure=outcome.extracted.structure,
            generation_used_fallback=outcome.generated.used_fallback,
            extraction_used_fallback=outcome.extracted.used_fallback,
            at=utcnow(),
        )
        await self._stage_summary_usage(uow, outcome, summary_id=stored.id)
        return stored.id

    async def _stage_summary_usage(
        self, uow: TurnUnitOfWork, outcome: SummaryOutcome, *, summary_id: uuid.UUID | None
    ) -> None:
        settings = self.deps.settings
        model = self.started.models[settings.summarizer_model]
        for position, (kind, attempts) in enumerate(
            [
                (CallKind.SUMMARY_GENERATION, outcome.generated.attempts),
                (CallKind.SUMMARY_EXTRACTION, outcome.extracted.attempts),
            ],
            start=1,
        ):
            entries = usage_entries(
                attempts,
                call_kind=kind,
                position=position,
                model=model,
                agent_key=None,
                policy=settings.policy,
                calibration=settings.calibration,
            )
            if entries:
                self._count_tokens(entries)
                await uow.usage.add(
                    entries,
                    user_id=self.turn.user_id,
                    session_id=self.turn.session_id,
                    turn_id=self.turn.id,
                    summary_id=summary_id,
                    at=utcnow(),
                )

    # --- budget ----------------------------------------------------------------------------

    def _refused_by_budget(self, outcome: _AgentOutcome) -> _AgentOutcome:
        outcome.status = AgentMessageStatus.FAILED
        outcome.prompt = None  # never sent
        outcome.error_code, outcome.error_message = "BUDGET_EXCEEDED", self.budget.refusal()
        log.info("agent %s refused in turn %s: budget", outcome.agent.key, self.turn.id)
        return outcome

    async def _budget_warning(self, uow: TurnUnitOfWork) -> list[TurnEvent]:
        payload = await self.budget.warning(uow)
        return [] if payload is None else [self._event(TurnEventType.BUDGET_WARNING, payload)]

    def _learn(
        self, model: Model, attempts: Sequence[Attempt], *, completions: bool = True
    ) -> None:
        """Feeds calibration with a finished call's provider-reported usage."""
        self.deps.settings.calibration.observe(model.alias, attempts, completions=completions)

    # --- helpers ---------------------------------------------------------------------------

    async def _stage_message(self, uow: TurnUnitOfWork, outcome: _AgentOutcome) -> uuid.UUID:
        message = await uow.messages.add(
            NewAgentMessage(
                turn_id=self.turn.id,
                agent_id=outcome.agent.id,
                position=outcome.position,
                status=outcome.status,
                content=outcome.text,
                error_code=outcome.error_code,
                error_message=outcome.error_message,
                model_alias=outcome.model.alias,
                started_at=outcome.started_at,
                finished_at=utcnow(),
            )
        )
        entries = usage_entries(
            outcome.attempts,
            call_kind=CallKind.AGENT_RESPONSE,
            position=outcome.position,
            model=outcome.model,
            agent_key=outcome.agent.key,
            policy=self.deps.settings.policy,
            calibration=self.deps.settings.calibration,
        )
        await self._stage_usage(uow, entries, agent_message_id=message.id)
        return message.id

    def _call_in_flight(self, kind: CallKind, position: int, model: Model) -> _CallInFlight:
        call = _CallInFlight(kind, position, model)
        self.calls_in_flight.append(call)
        return call

    def _usage_of(self, call: _CallInFlight) -> list[UsageEntry]:
        return usage_entries(
            call.spent,
            call_kind=call.kind,
            position=call.position,
            model=call.model,
            agent_key=None,
            policy=self.deps.settings.policy,
            calibration=self.deps.settings.calibration,
        )

    async def _stage_usage(
        self,
        uow: TurnUnitOfWork,
        entries: Sequence[UsageEntry],
        *,
        agent_message_id: uuid.UUID | None = None,
    ) -> None:
        if entries:
            self._count_tokens(entries)
            self.span.metered(entries)
            await uow.usage.add(
                entries,
                user_id=self.turn.user_id,
                session_id=self.turn.session_id,
                turn_id=self.turn.id,
                agent_message_id=agent_message_id,
                at=utcnow(),
            )

    def _count_tokens(self, entries: Sequence[UsageEntry]) -> None:
        self.tokens_spent += sum(e.prompt_tokens + e.completion_tokens for e in entries)

    def _event(self, kind: TurnEventType, payload: dict[str, object]) -> TurnEvent:
        self.sequence += 1
        return TurnEvent(
            turn_id=self.turn.id,
            session_id=self.turn.session_id,
            sequence=self.sequence,
            type=kind,
            at=utcnow(),
            payload=payload,
        )

    async def _publish_deltas(self, events: Sequence[TurnEvent]) -> None:
        # Deltas are not durable, so no commit publishes them: the runner does, as they come.
        await self.deps.publisher.publish(tuple(events))


async def _stop(call: asyncio.Future[Any]) -> None:
    """Cancels a provider call and waits until its connection is closed and attempts recorded."""
    call.cancel()
    with contextlib.suppress(asyncio.CancelledError, LLMCallError):
        await call


def _status(
    outcomes: Sequence[_AgentOutcome], *, cancelled: bool, failure: str | None
) -> TurnStatus:
    if cancelled:
        return TurnStatus.CANCELLED
    if failure is not None:
        return TurnStatus.FAILED
    succeeded = sum(o.status is AgentMessageStatus.COMPLETED for o in outcomes)
    if outcomes and succeeded == len(outcomes):
        return TurnStatus.COMPLETED
    return TurnStatus.PARTIAL if succeeded else TurnStatus.FAILED


def _assistant_output(outcomes: Sequence[_AgentOutcome]) -> str:
    return "\n\n".join(
        f"{o.agent.name}: {o.text}" for o in outcomes if o.status is AgentMessageStatus.COMPLETED
    )


def _audit(outcomes: Sequence[_AgentOutcome]) -> ContextAudit:
    prompts = [o.prompt for o in outcomes if o.prompt is not None]
    return ContextAudit(
        model_aliases=tuple(o.model.alias for o in outcomes),
        summary_id=prompts[0].summary_id if prompts else None,
        history_turns_included=max((p.history_turns_included for p in prompts), default=0),
        estimated_prompt_tokens=sum(p.estimated_prompt_tokens for p in prompts),
    )
