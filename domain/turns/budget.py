"""Budget reservations: before any LLM call a turn reserves the billable cost of its worst case,
so concurrent turns of one user cannot together overshoot the budget by more than one estimate.

Worst case, per agent the mode can dispatch: the prompt it could be shown (persona, memory, the
message, and every earlier agent's longest reply, capped by its context window) at the input price
plus its maximum output at the output price. Only call kinds billed to the user count: with the
default policy the manager's routing call (UNMETERED) and summaries (SYSTEM_OVERHEAD) do not.
Retries of failed attempts are not reserved (documented in docs/metering_policy.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from domain.enums import BillingCategory, CallKind
from domain.llm import estimate_tokens
from domain.records import Model
from domain.turns.context import SessionMemory
from domain.turns.contracts import RosterAgent
from domain.turns.metering import MeteringPolicy, worst_case_nano

PER_MESSAGE_OVERHEAD = 8  # framing of the few messages a prompt adds around its content


def memory_tokens(memory: SessionMemory) -> int:
    summary = estimate_tokens(memory.summary.text) if memory.summary else 0
    turns = sum(
        estimate_tokens(t.user_message) + estimate_tokens(t.assistant_output) + PER_MESSAGE_OVERHEAD
        for t in memory.turns
    )
    return summary + turns


def worst_case_turn_nano(
    *,
    agents: Sequence[RosterAgent],
    count: int,
    models: Mapping[str, Model],
    message: str,
    memory: SessionMemory,
    policy: MeteringPolicy,
) -> int:
    """The reservation of a turn that dispatches up to `count` of `agents` (the dearest ones)."""
    if policy.category(CallKind.AGENT_RESPONSE) is not BillingCategory.USER_BILLABLE:
        return 0
    base = estimate_tokens(message) + memory_tokens(memory) + 4 * PER_MESSAGE_OVERHEAD
    costs: list[tuple[int, int]] = []  # (cost, max output) of each candidate as agent 1
    for agent in agents:
        model = models[agent.model_alias]
        prompt = min(base + estimate_tokens(agent.system_prompt), _prompt_room(model))
        costs.append((worst_case_nano(prompt, model), model.max_output_tokens))
    chosen = sorted(range(len(agents)), key=lambda i: costs[i][0], reverse=True)[:count]
    total, earlier_output = 0, 0
    for i in chosen:
        model = models[agents[i].model_alias]
        prompt = min(
            base + estimate_tokens(agents[i].system_prompt) + earlier_output, _prompt_room(model)
        )
        total += worst_case_nano(prompt, model)
        earlier_output += model.max_output_tokens
    return total


def _prompt_room(model: Model) -> int:
    return max(model.context_window - model.max_output_tokens, 0)
