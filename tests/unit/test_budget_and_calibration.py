"""The pure parts of budgets and calibration: what a call may still spend, the output cap it gets,
and the per-model figures learned from provider-reported calls."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from domain.calibration import EwmaCalibration
from domain.enums import TokenSource, TurnMode, TurnStatus
from domain.llm import Attempt, TokenUsage
from domain.records import Model
from domain.turns.budget import BudgetState, output_cap, used_fraction
from domain.turns.metering import cost_nano
from domain.turns.records import Turn
from tests.attempts import provider_call

NOW = datetime(2026, 12, 4, tzinfo=UTC)


def model(
    *, input_nano: int | None = 1_000_000_000, output_nano: int | None = 2_000_000_000
) -> Model:
    return Model(
        id=uuid.uuid4(),
        alias="m",
        provider="fake",
        provider_model="m",
        input_nano_per_mtok=input_nano,
        output_nano_per_mtok=output_nano,
        max_output_tokens=1_000,
        context_window=10_000,
    )


def running(reserved: int) -> Turn:
    return Turn(
        id=uuid.uuid4(),
        session_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        index=1,
        mode=TurnMode.MANUAL,
        status=TurnStatus.RUNNING,
        user_message="hi",
        assistant_output="",
        routing=None,
        context_audit=None,
        idempotency_key=None,
        request_fingerprint=None,
        runner_id="r",
        lease_expires_at=None,
        cancel_requested_at=None,
        summary_triggered=False,
        failure_reason=None,
        reserved_nano=reserved,
        started_at=NOW,
        finished_at=None,
    )


# --- what a call may still spend ------------------------------------------------------------------


def test_a_call_may_spend_the_budget_minus_spend_and_the_other_turns_open_reservations() -> None:
    mine, other, overspent = running(500), running(300), running(100)
    state = BudgetState(
        budget_nano=2_000,
        spent_nano=700,  # this turn's calls included
        running=[mine, other, overspent],
        committed_by_turn={mine.id: 200, other.id: 100, overspent.id: 250},
    )

    # the other turn still holds 300 - 100; the overspent one holds nothing, never less
    assert state.open_reservations() == 300 + 200
    assert state.left_for(mine.id) == 2_000 - 700 - 200
    assert state.left_for(None) == 2_000 - 700 - 500


def test_a_call_gets_its_own_reservation_and_a_share_of_the_unreserved_remainder() -> None:
    mine, other = running(500), running(300)
    state = BudgetState(
        budget_nano=2_000,
        spent_nano=100,
        running=[mine, other],
        committed_by_turn={mine.id: 100},
    )

    assert state.unreserved() == 2_000 - 100 - 400 - 300
    assert state.allowance(mine.id, sharing=4) == 400 + 1_200 // 4
    assert state.allowance(mine.id, sharing=1) == state.left_for(mine.id)


def test_an_overcommitted_budget_leaves_a_call_less_than_its_reservation() -> None:
    mine, other = running(500), running(900)
    state = BudgetState(
        budget_nano=1_000, spent_nano=0, running=[mine, other], committed_by_turn={}
    )

    assert state.unreserved() == -400
    assert state.allowance(mine.id, sharing=4) == 100 == state.left_for(mine.id)


def test_calls_sharing_the_remainder_never_take_more_than_there_is() -> None:
    # given: four running turns, each reserved 100; 600 of 1 000 unreserved
    turns = [running(100) for _ in range(4)]
    state = BudgetState(budget_nano=1_000, spent_nano=0, running=turns, committed_by_turn={})

    # when: all four calls run at once, each using everything it is allowed
    total = sum(state.allowance(turn.id, sharing=4) for turn in turns)

    # then
    assert total == 1_000


def test_the_cap_is_the_most_output_whose_row_fits_what_is_left() -> None:
    m = model()  # 1 000 nano-USD per prompt token, 2 000 per output token

    assert output_cap(2_000_000, 1_000, m) == 500  # (2e6 - 1e6) / 2000
    assert output_cap(2_001_999, 1_000, m) == 500
    assert output_cap(10_000_000, 1_000, m) == 1_000  # never above the model's own maximum


def test_a_cap_never_lets_a_row_cost_more_than_what_is_left() -> None:
    m = model(input_nano=333_333_333, output_nano=1_234_567_891)
    for left in (0, 1, 999, 12_345, 700_001):
        for prompt in (0, 7, 1_001):
            cap = output_cap(left, prompt, m)
            assert cap is not None
            if cap > 0:
                assert cost_nano(prompt, cap, m) <= left


def test_a_cap_is_zero_when_the_prompt_alone_is_more_than_what_is_left() -> None:
    assert output_cap(100_000, 1_000, model()) == 0
    assert output_cap(-50, 0, model()) == 0


@pytest.mark.parametrize(("input_nano", "output_nano"), [(None, None), (1, None), (None, 1)])
def test_an_unpriced_model_is_never_capped(input_nano: int | None, output_nano: int | None) -> None:
    assert output_cap(0, 10, model(input_nano=input_nano, output_nano=output_nano)) is None


def test_used_fraction() -> None:
    assert used_fraction(1_000, 850) == 0.85
    assert used_fraction(1_000, 1_500) == 1.5


# --- calibration ----------------------------------------------------------------------------------


def test_without_history_estimates_stand_and_the_default_completion_is_expected() -> None:
    calibration = EwmaCalibration(default_expected_completion=300)

    assert calibration.prompt_tokens("m", 1_000) == 1_000
    assert calibration.expected_completion("m", max_output_tokens=2_000) == 300
    assert calibration.expected_completion("m", max_output_tokens=100) == 100


def test_a_steady_ratio_is_learned_from_the_first_reported_call() -> None:
    calibration = EwmaCalibration()

    calibration.observe("m", [provider_call(917, 40, estimated=1_000)])

    assert calibration.prompt_tokens("m", 2_000) == 1_834
    assert calibration.expected_completion("m", max_output_tokens=2_000) == 40
    assert calibration.prompt_tokens("other", 2_000) == 2_000  # per model


def test_a_changed_workload_is_followed_within_a_few_calls() -> None:
    calibration = EwmaCalibration()
    calibration.observe("m", [provider_call(1_000, 100, estimated=1_000)])

    for _ in range(15):
        calibration.observe("m", [provider_call(800, 300, estimated=1_000)])

    assert calibration.prompt_tokens("m", 1_000) == pytest.approx(800, rel=0.03)
    assert calibration.expected_completion("m", max_output_tokens=2_000) == pytest.approx(
        300, rel=0.03
    )


def test_estimated_usage_and_failed_calls_teach_nothing_about_completions() -> None:
    calibration = EwmaCalibration(default_expected_completion=50)
    failed = Attempt(
        number=1,
        reached_provider=True,
        may_be_billed=True,
        succeeded=False,
        error_code=None,
        usage=TokenUsage(prompt_tokens=500, completion_tokens=3, source=TokenSource.PROVIDER),
        latency_ms=1,
        estimated_prompt_tokens=1_000,
    )

    calibration.observe(
        "m", [provider_call(10, 999, estimated=1_000, source=TokenSource.ESTIMATED)]
    )
    calibration.observe("m", [failed])

    assert calibration.expected_completion("m", max_output_tokens=2_000) == 50
    assert calibration.prompt_tokens("m", 1_000) == 500  # the failed call's prompt was reported


def test_a_completion_cut_by_a_budget_cap_teaches_only_the_prompt_ratio() -> None:
    calibration = EwmaCalibration(default_expected_completion=50)

    calibration.observe("m", [provider_call(900, 20, estimated=1_000)], completions=False)

    assert calibration.expected_completion("m", max_output_tokens=2_000) == 50
    assert calibration.prompt_tokens("m", 1_000) == 900
