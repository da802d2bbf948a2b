"""ORCHESTRATOR mode: a manager model picks the agents; strict JSON, deterministic fallback.

The manager is shown the roster and the message and must answer
`{"selected_agent_keys": ["researcher", "writer"]}` (the legacy `{"selected_agent_key": "writer"}`
is still accepted). Unknown keys are dropped, duplicates removed, the list capped. Anything else —
and a manager call that fails after its retries — takes the fallback: the session's default agent.

The manager's request carries, as its user message, the JSON document the offline scripted
provider also reads: `{"roster": [{"key", "name", "description"}], "message", "max_agents"}`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from domain.enums import CallKind, TurnMode
from domain.llm import Attempt, ChatMessage, LLMCallError, LLMGateway, LLMRequest
from domain.records import Model
from domain.structured import fallback, parse_strict
from domain.turns.contracts import RosterAgent, RoutingDecision
from domain.turns.planning import default_agent, enabled

PARSER = "manager routing"

MANAGER_SYSTEM_PROMPT = (
    "You are the manager of a team of AI agents. Read the user's message and choose which "
    "agents should answer it, in the order they should speak (later agents see earlier "
    "replies). Choose only keys from the roster, at most max_agents of them. Answer with "
    'strict JSON and nothing else: {"selected_agent_keys": ["key1", "key2"]}'
)


class _RoutingAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    selected_agent_keys: list[str] | None = None
    selected_agent_key: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ManagerOutcome:
    decision: RoutingDecision
    attempts: tuple[Attempt, ...]  # metered whatever happened


def manager_request(
    message: str, roster: Sequence[RosterAgent], model: Model, *, cap: int
) -> LLMRequest:
    document = {
        "roster": [
            {"key": a.key, "name": a.name, "description": a.description} for a in enabled(roster)
        ],
        "message": message,
        "max_agents": cap,
    }
    return LLMRequest(
        provider=model.provider,
        model=model.provider_model,
        messages=(
            ChatMessage(role="system", content=MANAGER_SYSTEM_PROMPT),
            ChatMessage(role="user", content=json.dumps(document, ensure_ascii=False)),
        ),
        max_output_tokens=min(model.max_output_tokens, 256),
        call_kind=CallKind.MANAGER_ROUTING,
        temperature=0.0,
        json_output=True,
    )


async def route(
    gateway: LLMGateway,
    message: str,
    roster: Sequence[RosterAgent],
    model: Model,
    *,
    cap: int,
    spent: list[Attempt] | None = None,
) -> ManagerOutcome:
    """`spent` receives the call's attempts as they end (see `LLMGateway.complete`)."""
    request = manager_request(message, roster, model, cap=cap)
    try:
        result = await gateway.complete(request, spent=spent)
    except LLMCallError as error:
        reason = fallback(PARSER, f"manager call failed: {error.code}")
        return ManagerOutcome(decision=_fallback(roster, reason), attempts=error.attempts)
    return ManagerOutcome(decision=decide(result.text, roster, cap=cap), attempts=result.attempts)


def decide(raw: str, roster: Sequence[RosterAgent], *, cap: int) -> RoutingDecision:
    parsed = parse_strict(_RoutingAnswer, raw, parser=PARSER)
    if parsed.value is None:
        return _fallback(roster, parsed.reason or "invalid output")
    answer = parsed.value
    wanted = answer.selected_agent_keys
    if wanted is None:
        wanted = [answer.selected_agent_key] if answer.selected_agent_key is not None else []
    usable = {agent.key for agent in enabled(roster)}
    keys: list[str] = []
    for key in (k.strip().lstrip("@").lower() for k in wanted):
        if key in usable and key not in keys:
            keys.append(key)
    if not keys:
        return _fallback(roster, fallback(PARSER, "no valid agent key selected"))
    return RoutingDecision(mode=TurnMode.ORCHESTRATOR, selected_agent_keys=tuple(keys[:cap]))


def _fallback(roster: Sequence[RosterAgent], reason: str) -> RoutingDecision:
    return RoutingDecision(
        mode=TurnMode.ORCHESTRATOR,
        selected_agent_keys=(default_agent(roster).key,),
        used_fallback=True,
        fallback_reason=reason,
    )
