"""Turn admission under the rate limits: the turn and its provider tokens are counted before any
LLM call; what the turn spent beyond the estimate is settled after it (domain/rate_limits.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from domain.llm import estimate_tokens
from domain.records import Model
from domain.turns import planning
from domain.turns.budget import PER_MESSAGE_OVERHEAD, memory_tokens
from domain.turns.context import SessionMemory
from domain.turns.contracts import RosterAgent, RoutingDecision


def estimated_turn_tokens(
    *,
    decision: RoutingDecision | None,
    roster: Sequence[RosterAgent],
    models: Mapping[str, Model],
    message: str,
    memory: SessionMemory,
) -> int:
    """What the turn will surely send: the prompts of the agents it will call — the planned ones,
    or (the manager picking at least one) the smallest prompt, each within its context window as
    the prompt builder keeps it. Replies, routing and summaries are unknown before the calls and
    settled after the turn; aiming low keeps "settle only shortfalls" from overcharging."""
    base = estimate_tokens(message) + memory_tokens(memory) + 4 * PER_MESSAGE_OVERHEAD
    agents = planning.enabled(roster)
    if decision is not None:
        chosen = set(decision.selected_agent_keys)
        agents = [agent for agent in agents if agent.key in chosen]
    prompts = [_prompt(agent, models[agent.model_alias], base) for agent in agents]
    if decision is None:
        return min(prompts, default=0)
    return sum(prompts)


def _prompt(agent: RosterAgent, model: Model, base: int) -> int:
    room = max(model.context_window - model.max_output_tokens, 0)
    return min(base + estimate_tokens(agent.system_prompt), room)
