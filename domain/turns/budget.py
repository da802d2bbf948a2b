"""Budgets: admission reserves a turn's *expected* cost; each call's output is capped by what the
budget still allows, so a call cannot spend past it (docs/metering_policy.md, "Budgets").

Expected cost, per agent the mode can dispatch: the prompt it will be shown (persona, memory, the
message, and the expected replies of the agents before it, capped by its context window), as the
heuristic estimates it corrected by what the model's provider reports, at the input price, plus
the completion the model is expected to produce (learned from provider-reported calls) at the
output price. Only call kinds billed to the user count: with the default policy the manager's
routing call (UNMETERED) and summaries (SYSTEM_OVERHEAD) do not.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from domain.calibration import UsageCalibration
from domain.clock import utcnow
from domain.enums import BillingCategory, CallKind
from domain.llm import estimate_tokens
from domain.records import Model
from domain.spend import month_start
from domain.turns.context import SessionMemory
from domain.turns.contracts import RosterAgent
from domain.turns.metering import MeteringPolicy, cost_nano
from domain.turns.ports import TurnUnitOfWork
from domain.turns.records import Turn

PER_MESSAGE_OVERHEAD = 8  # framing of the few messages a prompt adds around its content


def memory_tokens(memory: SessionMemory) -> int:
    summary = estimate_tokens(memory.summary.text) if memory.summary else 0
    turns = sum(
        estimate_tokens(t.user_message) + estimate_tokens(t.assistant_output) + PER_MESSAGE_OVERHEAD
        for t in memory.turns
    )
    return summary + turns


def expected_turn_nano(
    *,
    agents: Sequence[RosterAgent],
    count: int,
    models: Mapping[str, Model],
    message: str,
    memory: SessionMemory,
    policy: MeteringPolicy,
    calibration: UsageCalibration,
) -> int:
    """The reservation of a turn that dispatches up to `count` of `agents` (the dearest ones)."""
    if policy.category(CallKind.AGENT_RESPONSE) is not BillingCategory.USER_BILLABLE:
        return 0
    base = estimate_tokens(message) + memory_tokens(memory) + 4 * PER_MESSAGE_OVERHEAD

    def call(agent: RosterAgent, earlier: int) -> tuple[int, int]:
        model = models[agent.model_alias]
        estimated = min(base + estimate_tokens(agent.system_prompt) + earlier, _room(model))
        prompt = calibration.prompt_tokens(model.alias, estimated)
        output = calibration.expected_completion(
            model.alias, max_output_tokens=model.max_output_tokens
        )
        return cost_nano(prompt, output, model), output

    chosen = sorted(agents, key=lambda agent: call(agent, 0)[0], reverse=True)[:count]
    total, earlier = 0, 0
    for agent in chosen:
        cost, output = call(agent, earlier)
        total += cost
        earlier += output
    return total


def _room(model: Model) -> int:
    return max(model.context_window - model.max_output_tokens, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetState:
    """A user's month as budgets see it: committed billable spend and the running turns with
    what each has committed so far (read in one short unit, by admission and by the cap)."""

    budget_nano: int
    spent_nano: int
    running: Sequence[Turn]
    committed_by_turn: Mapping[uuid.UUID, int]

    def open_reservations(self, *, excluding: uuid.UUID | None = None) -> int:
        """What running turns reserved and have not spent yet (a turn never reserves less than
        nothing: one that spent past its reservation holds 0)."""
        return sum(
            max(turn.reserved_nano - self.committed_by_turn.get(turn.id, 0), 0)
            for turn in self.running
            if turn.id != excluding
        )

    def left_for(self, turn_id: uuid.UUID | None) -> int:
        """What the budget still allows `turn_id` (None: a turn not started yet) to spend: the
        budget minus month spend (this turn's calls included) minus every other open
        reservation."""
        return self.budget_nano - self.spent_nano - self.open_reservations(excluding=turn_id)

    def unreserved(self) -> int:
        """What no running turn has reserved (negative when reservations exceed the budget)."""
        return self.budget_nano - self.spent_nano - self.open_reservations()

    def allowance(self, turn_id: uuid.UUID, *, sharing: int) -> int:
        """What one call of `turn_id` may spend: its turn's own open reservation plus a
        `sharing`-th of the unreserved remainder — never more than `left_for(turn_id)`. At most
        `sharing` calls of a user run at once (one per running turn), so together they cannot
        take more of the remainder than there is, however their admissions and calls
        interleave."""
        own = self.left_for(turn_id) - self.unreserved()
        remainder = self.unreserved()
        return own + (remainder // max(sharing, 1) if remainder > 0 else remainder)


def output_cap(left_nano: int, prompt_tokens: int, model: Model) -> int | None:
    """The most completion tokens a call may produce without its row costing more than
    `left_nano`; None when the model's output is free (nothing to cap)."""
    if not model.priced or not model.output_nano_per_mtok:
        return None  # an unpriced model is recorded at cost 0: it cannot spend the budget
    prompt_scaled = prompt_tokens * (model.input_nano_per_mtok or 0)
    affordable = (left_nano * 1_000_000 - prompt_scaled) // model.output_nano_per_mtok
    return max(min(affordable, model.max_output_tokens), 0)


def used_fraction(budget_nano: int, spent_nano: int) -> float:
    return spent_nano / budget_nano if budget_nano > 0 else 1.0


async def read_state(
    uow: TurnUnitOfWork,
    user_id: uuid.UUID,
    budget_nano: int,
    *,
    running: Sequence[Turn] | None = None,
) -> BudgetState:
    """The user's budget state as admission and the cap both read it (`running` if already
    read in this unit)."""
    if running is None:
        running = await uow.turns.running_for_user(user_id)
    return BudgetState(
        budget_nano=budget_nano,
        spent_nano=await uow.turns.month_spend(user_id, since=month_start(utcnow())),
        running=running,
        committed_by_turn=await uow.turns.committed_cost_by_turn([t.id for t in running]),
    )
