"""Metering: exact integer nano-USD costs, one entry per attempt that reached a provider, billing
categories from the policy (F45, F46 and Option A), and the expected budget reservation."""

from __future__ import annotations

import random
import uuid
from decimal import ROUND_HALF_UP, Decimal

import pytest

from domain.calibration import EwmaCalibration
from domain.enums import BillingCategory, CallKind, TokenSource
from domain.llm import Attempt, LLMErrorCode, TokenUsage, estimate_tokens
from domain.money import nano_to_usd
from domain.records import Model
from domain.turns.budget import PER_MESSAGE_OVERHEAD, expected_turn_nano
from domain.turns.context import PastTurn, SessionMemory, SummaryMemory
from domain.turns.contracts import RosterAgent
from domain.turns.metering import (
    DEFAULT_CATEGORIES,
    MeteringPolicy,
    UsageEntry,
    cost_nano,
    usage_entries,
    worst_case_nano,
)
from tests.attempts import provider_call


def model(
    alias: str = "m",
    *,
    input_nano: int | None = 2_500_000_000,
    output_nano: int | None = 10_000_000_000,
    max_output: int = 1_000,
    window: int = 100_000,
) -> Model:
    return Model(
        id=uuid.uuid4(),
        alias=alias,
        provider="fake",
        provider_model=f"{alias}-vendor",
        input_nano_per_mtok=input_nano,
        output_nano_per_mtok=output_nano,
        max_output_tokens=max_output,
        context_window=window,
    )


def decimal_cost(prompt: int, completion: int, m: Model) -> int:
    """The reference: Decimal USD math, rounded half-up to whole nano-USD once."""
    assert m.input_nano_per_mtok is not None
    assert m.output_nano_per_mtok is not None
    exact = (
        Decimal(prompt) * m.input_nano_per_mtok + Decimal(completion) * m.output_nano_per_mtok
    ) / Decimal(1_000_000)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


# --- cost_nano ------------------------------------------------------------------------------------


def test_a_whole_cost_is_exact() -> None:
    # $2.50 / M input, $10 / M output: 1000 prompt + 500 completion = $0.0025 + $0.005
    assert cost_nano(1_000, 500, model()) == 7_500_000
    assert nano_to_usd(cost_nano(1_000, 500, model())) == Decimal("0.0075")


@pytest.mark.parametrize(
    ("input_nano", "tokens", "expected"),
    [
        (1_500_000, 1, 2),  # 1.5 nano rounds half up
        (2_500_000, 1, 3),  # 2.5 nano rounds half up, not to even
        (1_499_999, 1, 1),
        (1_000_001, 1, 1),
        (500_000, 1, 1),  # exactly half a nano
        (499_999, 1, 0),
        (333_333, 3, 1),  # 0.999999 nano
    ],
)
def test_a_fractional_cost_rounds_half_up_to_a_whole_nano(
    input_nano: int, tokens: int, expected: int
) -> None:
    priced = model(input_nano=input_nano, output_nano=0)
    assert cost_nano(tokens, 0, priced) == expected


def test_rounding_happens_once_per_row_not_per_side() -> None:
    # 0.5 nano of input + 0.5 nano of output = 1 nano; rounding each side first would give 2
    priced = model(input_nano=500_000, output_nano=500_000)
    assert cost_nano(1, 1, priced) == 1


def test_many_small_fractional_costs_sum_without_drift() -> None:
    rng = random.Random(46)
    priced = model(input_nano=150_001_337, output_nano=600_000_007)
    rows = [(rng.randint(1, 5_000), rng.randint(0, 2_000)) for _ in range(5_000)]

    total = sum(cost_nano(p, c, priced) for p, c in rows)

    assert isinstance(total, int)
    assert total == sum(decimal_cost(p, c, priced) for p, c in rows)
    assert nano_to_usd(total) == sum(
        (nano_to_usd(decimal_cost(p, c, priced)) for p, c in rows), Decimal(0)
    )


def test_large_token_counts_stay_exact() -> None:
    priced = model(input_nano=123_456_789_012, output_nano=987_654_321_098)
    assert cost_nano(10**9, 10**9, priced) == decimal_cost(10**9, 10**9, priced)


@pytest.mark.parametrize(
    ("input_nano", "output_nano"), [(None, None), (None, 1_000), (1_000, None)]
)
def test_an_unpriced_model_costs_zero(input_nano: int | None, output_nano: int | None) -> None:
    assert cost_nano(1_000, 1_000, model(input_nano=input_nano, output_nano=output_nano)) == 0


def test_the_worst_case_of_a_call_is_its_prompt_plus_its_whole_output() -> None:
    priced = model(max_output=2_048)
    assert worst_case_nano(300, priced) == cost_nano(300, 2_048, priced)


# --- usage_entries --------------------------------------------------------------------------------


def attempt(
    number: int,
    *,
    reached: bool = True,
    ok: bool = True,
    prompt: int = 100,
    completion: int = 50,
    cached: int = 0,
    reasoning: int = 0,
    source: TokenSource = TokenSource.PROVIDER,
    code: LLMErrorCode | None = None,
    billed: bool | None = None,
) -> Attempt:
    return Attempt(
        number=number,
        reached_provider=reached,
        may_be_billed=ok if billed is None else billed,
        succeeded=ok,
        error_code=code,
        usage=TokenUsage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            cached_tokens=cached,
            reasoning_tokens=reasoning,
            source=source,
        ),
        latency_ms=25 * number,
        provider_request_id=f"req-{number}",
    )


def entries(
    kind: CallKind,
    attempts: list[Attempt],
    policy: MeteringPolicy | None = None,
    m: Model | None = None,
) -> list[UsageEntry]:
    return usage_entries(
        attempts,
        call_kind=kind,
        position=2,
        model=m or model("writer-large"),
        agent_key="writer" if kind is CallKind.AGENT_RESPONSE else None,
        policy=policy or MeteringPolicy(),
    )


def test_only_attempts_that_reached_the_provider_are_metered() -> None:
    attempts = [
        attempt(
            1,
            reached=False,
            ok=False,
            code=LLMErrorCode.PROVIDER_POOL_EXHAUSTED,
            prompt=0,
            completion=0,
        ),
        attempt(2, ok=False, code=LLMErrorCode.PROVIDER_UNAVAILABLE, completion=0),
        attempt(3),
    ]

    rows = entries(CallKind.AGENT_RESPONSE, attempts)

    assert [r.attempt for r in rows] == [2, 3]
    assert [r.succeeded for r in rows] == [False, True]
    assert rows[0].error_code == "PROVIDER_UNAVAILABLE"
    assert rows[1].error_code is None


def test_an_entry_carries_the_call_the_model_and_a_price_snapshot() -> None:
    priced = model("writer-large", input_nano=2_500_000_000, output_nano=10_000_000_000)

    [row] = entries(CallKind.AGENT_RESPONSE, [attempt(1, prompt=1_000, completion=500)], m=priced)

    assert row.call_kind is CallKind.AGENT_RESPONSE
    assert row.position == 2
    assert row.agent_key == "writer"
    assert row.provider == "fake"
    assert row.model_alias == "writer-large"
    assert (row.input_nano_per_mtok, row.output_nano_per_mtok) == (2_500_000_000, 10_000_000_000)
    assert row.cost_nano == 7_500_000
    assert row.unpriced is False
    assert row.latency_ms == 25
    assert row.provider_request_id == "req-1"


@pytest.mark.parametrize("kind", list(CallKind))
@pytest.mark.parametrize(
    "code",
    [
        LLMErrorCode.PROVIDER_RATE_LIMITED,  # 429
        LLMErrorCode.PROVIDER_UNAVAILABLE,  # 5xx
        LLMErrorCode.PROVIDER_AUTH,  # 401 / 403
        LLMErrorCode.PROVIDER_BAD_RESPONSE,  # another 4xx
    ],
)
def test_a_refused_attempt_keeps_its_row_with_no_tokens_and_no_cost(
    kind: CallKind, code: LLMErrorCode
) -> None:
    # given: the provider answered with an error status; our estimate of its prompt was 68
    refused = attempt(1, ok=False, billed=False, code=code, prompt=68, completion=0,
                      source=TokenSource.ESTIMATED)  # fmt: skip

    [row] = entries(kind, [refused, attempt(2)])[:1]

    assert (row.prompt_tokens, row.completion_tokens, row.cost_nano) == (0, 0, 0)
    assert (row.cached_tokens, row.reasoning_tokens) == (0, 0)
    assert row.token_source is TokenSource.NONE
    # the audit trail stays
    assert (row.attempt, row.succeeded, row.error_code, row.latency_ms) == (1, False, code, 25)
    assert row.billing_category is DEFAULT_CATEGORIES[kind]


def test_a_cut_stream_or_a_timeout_after_sending_stays_an_estimated_cost() -> None:
    cut = attempt(1, ok=False, billed=True, code=LLMErrorCode.PROVIDER_TIMEOUT, prompt=68,
                  completion=12, source=TokenSource.ESTIMATED)  # fmt: skip
    m = model("writer-large")

    [row] = entries(CallKind.AGENT_RESPONSE, [cut], m=m)

    assert (row.prompt_tokens, row.completion_tokens) == (68, 12)
    assert row.token_source is TokenSource.ESTIMATED
    assert row.cost_nano == cost_nano(68, 12, m) > 0


def test_an_entry_snapshots_the_vendors_model_id() -> None:
    [row] = entries(CallKind.AGENT_RESPONSE, [attempt(1)], m=model("writer-large"))

    assert row.provider_model == "writer-large-vendor"
    assert row.recovered is False


def test_an_unpriced_model_is_flagged_with_its_tokens_kept() -> None:
    free = model(input_nano=None, output_nano=None)

    [row] = entries(CallKind.AGENT_RESPONSE, [attempt(1, prompt=321, completion=123)], m=free)

    assert row.unpriced is True
    assert row.cost_nano == 0
    assert (row.input_nano_per_mtok, row.output_nano_per_mtok) == (None, None)
    assert (row.prompt_tokens, row.completion_tokens) == (321, 123)


def test_estimated_cached_and_reasoning_tokens_are_carried() -> None:
    estimated = attempt(1, source=TokenSource.ESTIMATED, prompt=77, completion=5)
    reported = attempt(2, cached=40, reasoning=20, prompt=100, completion=60)

    first, second = entries(CallKind.AGENT_RESPONSE, [estimated, reported])

    assert first.token_source is TokenSource.ESTIMATED
    assert (first.prompt_tokens, first.completion_tokens) == (77, 5)
    assert second.token_source is TokenSource.PROVIDER
    assert (second.cached_tokens, second.reasoning_tokens) == (40, 20)


@pytest.mark.parametrize(
    ("kind", "category"),
    [
        (CallKind.AGENT_RESPONSE, BillingCategory.USER_BILLABLE),  # F45: every reply
        (CallKind.MANAGER_ROUTING, BillingCategory.UNMETERED),  # F46, locked
        (CallKind.SUMMARY_GENERATION, BillingCategory.SYSTEM_OVERHEAD),
        (CallKind.SUMMARY_EXTRACTION, BillingCategory.SYSTEM_OVERHEAD),
    ],
)
def test_default_categories(kind: CallKind, category: BillingCategory) -> None:
    assert MeteringPolicy().category(kind) is category
    assert all(r.billing_category is category for r in entries(kind, [attempt(1), attempt(2)]))


def test_option_a_makes_routing_system_overhead_by_configuration() -> None:
    option_a = MeteringPolicy(
        categories={**DEFAULT_CATEGORIES, CallKind.MANAGER_ROUTING: BillingCategory.SYSTEM_OVERHEAD}
    )

    [row] = entries(CallKind.MANAGER_ROUTING, [attempt(1)], policy=option_a)

    assert row.billing_category is BillingCategory.SYSTEM_OVERHEAD
    assert row.cost_nano > 0  # its tokens are still priced
    assert option_a.category(CallKind.AGENT_RESPONSE) is BillingCategory.USER_BILLABLE


def test_unmetered_routing_still_records_tokens_and_list_price_cost() -> None:
    [row] = entries(CallKind.MANAGER_ROUTING, [attempt(1, prompt=1_000, completion=500)])

    assert row.billing_category is BillingCategory.UNMETERED
    assert row.cost_nano == 7_500_000
    assert row.agent_key is None


def test_default_policies_do_not_share_their_mapping() -> None:
    first = MeteringPolicy()
    assert first.categories is not MeteringPolicy().categories
    assert first.categories is not DEFAULT_CATEGORIES


# --- the expected reservation of a turn -----------------------------------------------------------
# With no history and a default expected completion above every model's maximum, the expected
# completion is the model's maximum: these reservations are the worst case.


def roster_agent(key: str, alias: str, prompt: str = "sys") -> RosterAgent:
    return RosterAgent(
        id=uuid.uuid4(),
        key=key,
        name=key,
        description="",
        system_prompt=prompt,
        enabled=True,
        model_alias=alias,
    )


CHEAP = model("cheap", input_nano=1_000_000_000, output_nano=2_000_000_000, max_output=100)
DEAR = model("dear", input_nano=10_000_000_000, output_nano=20_000_000_000, max_output=200)
MODELS = {"cheap": CHEAP, "dear": DEAR}
EMPTY = SessionMemory(summary=None, turns=())
UNLEARNED = EwmaCalibration(default_expected_completion=1_000_000)


def base_tokens(message: str, memory: SessionMemory = EMPTY) -> int:
    summary = estimate_tokens(memory.summary.text) if memory.summary else 0
    turns = sum(
        estimate_tokens(t.user_message) + estimate_tokens(t.assistant_output) + PER_MESSAGE_OVERHEAD
        for t in memory.turns
    )
    return estimate_tokens(message) + summary + turns + 4 * PER_MESSAGE_OVERHEAD


def test_one_unlearned_agent_reserves_its_prompt_and_at_most_its_whole_output() -> None:
    agents = [roster_agent("a", "cheap", prompt="x" * 40)]
    message = "y" * 80

    reserved = expected_turn_nano(
        agents=agents,
        count=1,
        models=MODELS,
        message=message,
        memory=EMPTY,
        policy=MeteringPolicy(),
        calibration=UNLEARNED,
    )

    prompt = base_tokens(message) + 10
    assert reserved == cost_nano(prompt, 100, CHEAP)


def test_a_turn_reserves_its_dearest_agents_each_seeing_the_earlier_outputs() -> None:
    agents = [roster_agent("a", "cheap"), roster_agent("b", "dear"), roster_agent("c", "cheap")]
    message = "hello"

    reserved = expected_turn_nano(
        agents=agents,
        count=2,
        models=MODELS,
        message=message,
        memory=EMPTY,
        policy=MeteringPolicy(),
        calibration=UNLEARNED,
    )

    base = base_tokens(message) + estimate_tokens("sys")
    # the dear one first (dearest), then a cheap one that reads the dear one's whole output
    assert reserved == cost_nano(base, 200, DEAR) + cost_nano(base + 200, 100, CHEAP)


def test_the_reservation_grows_with_memory() -> None:
    agents = [roster_agent("a", "cheap")]
    memory = SessionMemory(
        summary=SummaryMemory(id=uuid.uuid4(), text="s" * 400, covers_through_turn=2),
        turns=(PastTurn(index=3, user_message="u" * 40, assistant_output="a" * 40),),
    )

    def reserve(memory: SessionMemory) -> int:
        return expected_turn_nano(
            agents=agents,
            count=1,
            models=MODELS,
            message="m",
            memory=memory,
            policy=MeteringPolicy(),
            calibration=UNLEARNED,
        )

    with_memory, without = reserve(memory), reserve(EMPTY)

    assert with_memory == cost_nano(base_tokens("m", memory) + 1, 100, CHEAP)
    assert with_memory > without


def test_a_prompt_is_capped_by_the_models_context_window() -> None:
    narrow = model(
        "narrow", input_nano=1_000_000_000, output_nano=1_000_000_000, max_output=100, window=300
    )
    agents = [roster_agent("a", "narrow")]

    reserved = expected_turn_nano(
        agents=agents,
        count=1,
        models={"narrow": narrow},
        message="z" * 100_000,
        memory=EMPTY,
        policy=MeteringPolicy(),
        calibration=UNLEARNED,
    )

    assert reserved == cost_nano(200, 100, narrow)


def test_nothing_is_reserved_when_agent_replies_are_not_billed_to_the_user() -> None:
    policy = MeteringPolicy(
        categories={**DEFAULT_CATEGORIES, CallKind.AGENT_RESPONSE: BillingCategory.SYSTEM_OVERHEAD}
    )

    reserved = expected_turn_nano(
        agents=[roster_agent("a", "dear")],
        count=1,
        models=MODELS,
        message="m",
        memory=EMPTY,
        policy=policy,
        calibration=UNLEARNED,
    )

    assert reserved == 0


def test_an_unpriced_agent_reserves_nothing() -> None:
    free = model("free", input_nano=None, output_nano=None)

    reserved = expected_turn_nano(
        agents=[roster_agent("a", "free")],
        count=1,
        models={"free": free},
        message="m",
        memory=EMPTY,
        policy=MeteringPolicy(),
        calibration=UNLEARNED,
    )

    assert reserved == 0


def test_a_learned_agent_reserves_its_corrected_prompt_and_its_expected_completion() -> None:
    # given: the provider reported half the heuristic's prompt and 30 completion tokens
    calibration = EwmaCalibration(default_expected_completion=1_000_000)
    calibration.observe("cheap", [provider_call(50, 30, estimated=100)])
    agents = [roster_agent("a", "cheap", prompt="x" * 40)]
    message = "y" * 80

    # when
    reserved = expected_turn_nano(
        agents=agents,
        count=1,
        models=MODELS,
        message=message,
        memory=EMPTY,
        policy=MeteringPolicy(),
        calibration=calibration,
    )

    # then: not the worst case (100 output tokens)
    prompt = round((base_tokens(message) + 10) * 0.5)
    assert reserved == cost_nano(prompt, 30, CHEAP)
    assert reserved < cost_nano(base_tokens(message) + 10, 100, CHEAP)


def test_an_unlearned_agent_reserves_the_default_expected_completion() -> None:
    agents = [roster_agent("a", "dear")]

    reserved = expected_turn_nano(
        agents=agents,
        count=1,
        models=MODELS,
        message="m",
        memory=EMPTY,
        policy=MeteringPolicy(),
        calibration=EwmaCalibration(default_expected_completion=40),
    )

    assert reserved == cost_nano(base_tokens("m") + estimate_tokens("sys"), 40, DEAR)


def test_estimated_rows_are_corrected_by_calibration_and_provider_rows_are_kept() -> None:
    calibration = EwmaCalibration()
    calibration.observe("m", [provider_call(90, 10, estimated=100)])
    estimated = attempt(1, prompt=200, completion=5, source=TokenSource.ESTIMATED)
    reported = attempt(2, prompt=200, completion=5)

    rows = usage_entries(
        [estimated, reported],
        call_kind=CallKind.AGENT_RESPONSE,
        position=1,
        model=model(),
        agent_key="a",
        policy=MeteringPolicy(),
        calibration=calibration,
    )

    assert [row.prompt_tokens for row in rows] == [180, 200]
    assert rows[0].cost_nano == cost_nano(180, 5, model())
