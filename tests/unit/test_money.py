"""Money: exact conversions between USD decimals and stored integer nano-USD."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.errors import BadUserInput
from domain.money import (
    MAX_BUDGET_USD,
    MAX_PRICE_USD_PER_MTOK,
    MAX_STORABLE_USD,
    NANO_PER_USD,
    budget_to_nano,
    nano_to_usd,
    non_negative_usd_to_nano,
    price_to_nano,
    usd_to_nano,
)


@pytest.mark.parametrize(
    ("usd", "nano"),
    [
        ("0", 0),
        ("1", 1_000_000_000),
        ("0.40", 400_000_000),
        ("12.5", 12_500_000_000),
        ("0.000000001", 1),
        ("-2.25", -2_250_000_000),
        ("123456789.123456789", 123_456_789_123_456_789),
    ],
)
def test_usd_converts_to_nano_exactly(usd: str, nano: int) -> None:
    assert usd_to_nano(Decimal(usd), field="amount") == nano


def test_large_amounts_keep_every_digit() -> None:
    # A float would lose the last digits here; integers and Decimals must not.
    amount = Decimal("9007199254.740993001")
    assert usd_to_nano(amount, field="amount") == 9_007_199_254_740_993_001
    assert nano_to_usd(9_007_199_254_740_993_001) == amount


def test_a_value_finer_than_one_nano_usd_is_refused_not_rounded() -> None:
    with pytest.raises(BadUserInput, match="amount has more than 9 decimal places"):
        usd_to_nano(Decimal("0.0000000015"), field="amount")


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "-Infinity", "sNaN"])
def test_non_finite_amounts_are_refused(amount: str) -> None:
    with pytest.raises(BadUserInput, match="budget must be a finite amount"):
        usd_to_nano(Decimal(amount), field="budget")


def test_non_negative_conversion_refuses_negative_amounts_naming_the_field() -> None:
    with pytest.raises(BadUserInput, match="monthlyBudgetUsd must not be negative"):
        non_negative_usd_to_nano(Decimal("-0.01"), field="monthlyBudgetUsd")


def test_non_negative_conversion_accepts_zero_and_positive_amounts() -> None:
    assert non_negative_usd_to_nano(Decimal("0"), field="x") == 0
    assert non_negative_usd_to_nano(Decimal("2.50"), field="x") == 2_500_000_000


@pytest.mark.parametrize(
    ("nano", "usd"),
    [
        (0, Decimal(0)),
        (1, Decimal("0.000000001")),
        (400_000_000, Decimal("0.4")),
        (NANO_PER_USD, Decimal(1)),
        (10 * NANO_PER_USD, Decimal(10)),
        (-1_500_000_000, Decimal("-1.5")),
    ],
)
def test_nano_converts_back_to_the_same_usd_value(nano: int, usd: Decimal) -> None:
    assert nano_to_usd(nano) == usd


@pytest.mark.parametrize("usd", ["0.27", "1.10", "10.00", "0.000000123", "99999.999999999"])
def test_round_trip_is_lossless(usd: str) -> None:
    assert nano_to_usd(usd_to_nano(Decimal(usd), field="x")) == Decimal(usd)


def test_zero_nano_is_a_plain_zero_not_an_exponent_form() -> None:
    assert str(nano_to_usd(0)) == "0"


@pytest.mark.parametrize("amount", ["9223372036.854775808", "1e20", "1e999999999"])
def test_amounts_a_bigint_of_nano_usd_cannot_hold_are_refused_naming_the_maximum(
    amount: str,
) -> None:
    with pytest.raises(BadUserInput, match=r"amount must be at most 9223372036\.854775807$"):
        usd_to_nano(Decimal(amount), field="amount")


def test_the_largest_storable_amount_converts_exactly() -> None:
    assert usd_to_nano(MAX_STORABLE_USD, field="amount") == 2**63 - 1
    assert usd_to_nano(-MAX_STORABLE_USD, field="amount") == -(2**63 - 1)


def test_a_vanishingly_small_amount_is_refused_not_rounded_to_zero() -> None:
    with pytest.raises(BadUserInput, match="more than 9 decimal places"):
        usd_to_nano(Decimal("1e-999999999"), field="amount")


def test_budgets_and_prices_have_their_own_maxima() -> None:
    assert budget_to_nano(MAX_BUDGET_USD, field="b") == 10**18
    assert price_to_nano(MAX_PRICE_USD_PER_MTOK, field="p") == 10**15
    with pytest.raises(BadUserInput, match=r"b must be at most 1000000000$"):
        budget_to_nano(MAX_BUDGET_USD + Decimal("0.000000001"), field="b")
    with pytest.raises(BadUserInput, match=r"p must be at most 1000000$"):
        price_to_nano(Decimal("1000000.1"), field="p")
