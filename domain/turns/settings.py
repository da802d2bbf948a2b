"""Limits and timings of turns, set from configuration by the composition root."""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.calibration import EwmaCalibration, UsageCalibration
from domain.turns.metering import MeteringPolicy


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnSettings:
    max_message_chars: int = 32_000
    max_agents_per_turn: int = 8
    manager_cap: int = 3  # the most agents the manager may pick
    max_running_turns_per_user: int = 4
    lease_seconds: float = 30.0
    heartbeat_seconds: float = 2.0  # lease renewal and cross-process cancel polling
    manager_model: str = "manager-mini"
    summarizer_model: str = "summarizer-mini"
    summary_threshold: int = 8  # finished turns since the last summary that make one due
    policy: MeteringPolicy = field(default_factory=MeteringPolicy)
    # Budgets (docs/metering_policy.md): a call whose budget-capped output would be smaller
    # than min_output_tokens is refused; a turn leaving the user at or above the warning
    # fraction of the budget says so. The calibration is shared, learned state, one per process.
    min_output_tokens: int = 16
    budget_warning_fraction: float = 0.8
    calibration: UsageCalibration = field(default_factory=EwmaCalibration)
