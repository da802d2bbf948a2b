"""One running turn's view of its user's budget: the output cap of each agent call, and the
warning its close gives when the user is near the budget (docs/metering_policy.md, "Budgets")."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace

from domain.clock import utcnow
from domain.enums import BillingCategory, CallKind
from domain.llm import Attempt, LLMRequest
from domain.money import nano_to_usd
from domain.records import Model
from domain.spend import month_start
from domain.turns import budget
from domain.turns.context import AgentPrompt
from domain.turns.ports import TurnUnitOfWork
from domain.turns.settings import TurnSettings


class TurnBudget:
    """Caps a turn's calls by what its user's budget allows. `budget_nano` is the budget at
    admission: a turn started without one is never capped."""

    def __init__(
        self,
        *,
        new_uow: Callable[[], TurnUnitOfWork],
        settings: TurnSettings,
        user_id: uuid.UUID,
        turn_id: uuid.UUID,
        budget_nano: int | None,
    ) -> None:
        self._new_uow = new_uow
        self._settings = settings
        self._user_id = user_id
        self._turn_id = turn_id
        self._budget_nano = budget_nano
        self.left_nano = 0  # what the budget allowed at the last capped call
        self.last_cap: int | None = None  # max_tokens the budget set on the last call, if any

    async def capped(self, prompt: AgentPrompt, model: Model) -> LLMRequest | None:
        """The agent's request with its output capped by what the budget allows it (its turn's
        open reservation and its share of the unreserved remainder: `BudgetState.allowance`);
        None when that is below the minimum output, and the call must be refused before
        anything is sent. A short read, like admission's: nothing is written and nothing is held
        across the call."""
        settings = self._settings
        self.last_cap = None
        billable = settings.policy.category(CallKind.AGENT_RESPONSE)
        if self._budget_nano is None or billable is not BillingCategory.USER_BILLABLE:
            return prompt.request
        async with self._new_uow() as uow:
            user = await uow.users.get(self._user_id)
            if user is None or user.monthly_budget_nano is None:
                return prompt.request
            state = await budget.read_state(uow, self._user_id, user.monthly_budget_nano)
        self.left_nano = state.allowance(self._turn_id, sharing=settings.max_running_turns_per_user)
        expected_prompt = settings.calibration.prompt_tokens(
            model.alias, prompt.estimated_prompt_tokens
        )
        cap = budget.output_cap(self.left_nano, expected_prompt, model)
        if cap is None:
            return prompt.request
        if cap < settings.min_output_tokens:
            return None
        if cap < prompt.request.max_output_tokens:
            self.last_cap = cap
        return replace(prompt.request, max_output_tokens=min(cap, prompt.request.max_output_tokens))

    def cut_short(self, attempts: Sequence[Attempt]) -> bool:
        """Whether the last call's answer ran into its budget cap (so its length was ours)."""
        cap = self.last_cap
        return cap is not None and any(a.usage.completion_tokens >= cap for a in attempts)

    def refusal(self) -> str:
        return (
            f"the monthly budget has ${nano_to_usd(max(self.left_nano, 0))} left, not enough "
            f"for {self._settings.min_output_tokens} output tokens of this agent's answer"
        )

    async def warning(self, uow: TurnUnitOfWork) -> dict[str, object] | None:
        """The BudgetWarning payload when the turn leaves its user at or above the warning
        fraction of the budget; read in the closing unit, after its own usage rows are staged."""
        if self._budget_nano is None:
            return None
        user = await uow.users.get(self._user_id)
        if user is None or user.monthly_budget_nano is None:
            return None
        spent = await uow.turns.month_spend(self._user_id, since=month_start(utcnow()))
        fraction = budget.used_fraction(user.monthly_budget_nano, spent)
        if fraction < self._settings.budget_warning_fraction:
            return None
        return {
            "used_fraction": fraction,
            "budget_nano": user.monthly_budget_nano,
            "spent_nano": spent,
        }
