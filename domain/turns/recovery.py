"""Which calls a dead runner had in flight, inferred from what it had committed.

A runner makes its calls in a fixed order and commits, before each provider request, what the
next call is — without a commit of its own per call:

- the manager's routing call (ORCHESTRATOR): the turn was committed without a routing decision;
- agent n: its `AgentStarted` event is durable (with the routing decision for the first agent,
  with agent n-1's message for the others) and its message is not;
- the summary's generation call: every agent of the plan has its message, and a summary is due
  for the turn (the same rule the runner applies, on the same committed memory).

Recovery cannot tell a call that was sent from one about to be: it assumes the request left,
because a vendor may bill it. Each call in flight becomes one `ESTIMATED` usage row marked
`recovered`: the prompt the runner built, re-built here from the same committed facts, plus the
text the call had already streamed — an agent's deltas, which the broker retains for its replay
window (Redis outlives the dead process; the in-memory broker died with it) — as completion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from domain.enums import AgentMessageStatus, CallKind, TurnMode
from domain.llm import LLMRequest, estimate_usage
from domain.records import Model
from domain.summaries.generator import generation_request
from domain.summaries.pipeline import plan_summary
from domain.turns.context import EarlierReply, PastTurn, SessionMemory, build_prompt
from domain.turns.contracts import RosterAgent
from domain.turns.events import TurnEvent, TurnEventType
from domain.turns.metering import MeteringPolicy, UsageEntry, cost_nano
from domain.turns.records import AgentMessage, Turn
from domain.turns.routing import manager_request
from domain.turns.settings import TurnSettings

RECOVERED_ERROR = "RUNNER_LOST"


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoveryFacts:
    """What a dead runner's turn had committed, read in the recovering unit of work."""

    turn: Turn
    roster: Sequence[RosterAgent]
    models: Mapping[str, Model]
    memory: SessionMemory
    events: Sequence[TurnEvent]  # the turn's durable events
    messages: Sequence[AgentMessage]  # the turn's stored agent messages
    # What each agent position had streamed, from the broker's retained deltas (streamed_replies)
    streamed: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallInFlight:
    kind: CallKind
    position: int
    model: Model
    request: LLMRequest
    agent: RosterAgent | None  # the agent answering (AGENT_RESPONSE), else None
    started_at: datetime
    streamed_text: str = ""  # what the call had streamed before its runner died


def calls_in_flight(facts: RecoveryFacts, settings: TurnSettings) -> list[CallInFlight]:
    """The calls the runner may have sent and not yet committed (at most one: it calls in
    sequence)."""
    turn = facts.turn
    if turn.routing is None:
        model = facts.models.get(settings.manager_model)
        if turn.mode is not TurnMode.ORCHESTRATOR or model is None:
            return []
        request = manager_request(turn.user_message, facts.roster, model, cap=settings.manager_cap)
        return [_call(CallKind.MANAGER_ROUTING, 0, model, request, None, turn.started_at)]
    stored = {message.position for message in facts.messages}
    started = [e for e in facts.events if e.type is TurnEventType.AGENT_STARTED]
    pending = [e for e in started if _position(e) not in stored]
    if pending:
        return _agent_call(facts, pending[-1])
    if len(stored) < len(turn.routing.selected_agent_keys):
        return []  # cancelled before the next agent: nothing was about to be sent
    return _summary_call(facts, settings)


def recovered_entry(call: CallInFlight, policy: MeteringPolicy) -> UsageEntry:
    """The usage row of a call a dead runner had in flight: its prompt and what it had
    streamed, estimated."""
    usage = estimate_usage(call.request.messages, call.streamed_text)
    return UsageEntry(
        call_kind=call.kind,
        billing_category=policy.category(call.kind),
        position=call.position,
        attempt=1,  # the runner's earlier attempts, if any, died with it
        agent_key=call.agent.key if call.agent else None,
        provider=call.model.provider,
        model_alias=call.model.alias,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_tokens=0,
        reasoning_tokens=0,
        token_source=usage.source,
        unpriced=not call.model.priced,
        input_nano_per_mtok=call.model.input_nano_per_mtok,
        output_nano_per_mtok=call.model.output_nano_per_mtok,
        cost_nano=cost_nano(usage.prompt_tokens, usage.completion_tokens, call.model),
        latency_ms=0,  # unknown: nobody saw it end
        succeeded=False,
        error_code=RECOVERED_ERROR,
        provider_request_id=None,
        provider_model=call.model.provider_model,
        recovered=True,
    )


def assistant_output(facts: RecoveryFacts) -> str:
    """The turn's output so far, as the runner would have closed it."""
    names = {agent.id: agent.name for agent in facts.roster}
    return "\n\n".join(
        f"{names.get(m.agent_id, m.model_alias)}: {m.content}" for m in _completed(facts)
    )


def _agent_call(facts: RecoveryFacts, started: TurnEvent) -> list[CallInFlight]:
    by_key = {agent.key: agent for agent in facts.roster}
    agent = by_key.get(str(started.payload.get("agent_key")))
    model = facts.models.get(agent.model_alias) if agent else None
    if agent is None or model is None:
        return []  # left the catalog since: no prompt to rebuild (logged by the caller)
    names = {a.id: a.name for a in facts.roster}
    earlier = [
        EarlierReply(agent_name=names.get(m.agent_id, m.model_alias), text=m.content)
        for m in _completed(facts)
    ]
    prompt = build_prompt(
        agent=agent,
        model=model,
        memory=facts.memory,
        message=facts.turn.user_message,
        earlier=earlier,
    )
    position = _position(started)
    call = _call(CallKind.AGENT_RESPONSE, position, model, prompt.request, agent, started.at)
    return [replace(call, streamed_text=facts.streamed.get(position, ""))]


def streamed_replies(retained: Sequence[TurnEvent]) -> dict[int, str]:
    """The text each agent position streamed, joined from a turn's retained deltas (in
    sequence order, merged deltas included)."""
    parts: dict[int, list[str]] = {}
    for event in retained:
        if event.type is TurnEventType.AGENT_DELTA:
            parts.setdefault(_position(event), []).append(str(event.payload.get("text", "")))
    return {position: "".join(texts) for position, texts in parts.items()}


def _summary_call(facts: RecoveryFacts, settings: TurnSettings) -> list[CallInFlight]:
    current = PastTurn(
        index=facts.turn.index,
        user_message=facts.turn.user_message,
        assistant_output=assistant_output(facts),
    )
    plan = plan_summary(facts.memory, current, threshold=settings.summary_threshold)
    model = facts.models.get(settings.summarizer_model)
    if plan is None or model is None:
        return []
    request = generation_request(plan.previous_text, plan.turns, model)
    started = max((m.finished_at or m.started_at for m in facts.messages), default=None)
    return [
        _call(
            CallKind.SUMMARY_GENERATION, 1, model, request, None, started or facts.turn.started_at
        )
    ]


def _completed(facts: RecoveryFacts) -> list[AgentMessage]:
    return sorted(
        (m for m in facts.messages if m.status is AgentMessageStatus.COMPLETED),
        key=lambda m: m.position,
    )


def _position(event: TurnEvent) -> int:
    value = event.payload.get("position")
    return value if isinstance(value, int) else 0


def _call(
    kind: CallKind,
    position: int,
    model: Model,
    request: LLMRequest,
    agent: RosterAgent | None,
    started_at: datetime,
) -> CallInFlight:
    return CallInFlight(
        kind=kind,
        position=position,
        model=model,
        request=request,
        agent=agent,
        started_at=started_at,
    )
