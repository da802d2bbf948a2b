"""Exact money: integer nano-USD (1e-9 USD) in storage, `Decimal` in the domain and the API.

Storage is a signed 64-bit integer (BIGINT), so every amount that comes in is bounded: an
amount beyond the bound is refused as bad input, never left to overflow the database.
"""

from __future__ import annotations

from decimal import Decimal

from domain.errors import BadUserInput

NANO_PER_USD = 1_000_000_000
_NANO = Decimal(1) / NANO_PER_USD

# The largest amount a BIGINT of nano-USD holds: 9,223,372,036.854775807 USD.
MAX_STORABLE_USD = Decimal(2**63 - 1) / NANO_PER_USD
# A monthly budget: 1e18 nano-USD, well inside a BIGINT (a month's spend may exceed it a little).
MAX_BUDGET_USD = Decimal(1_000_000_000)
# A price per million tokens: one call's cost, at most 2^31 tokens at this price (2.1e18 nano-USD),
# still fits a BIGINT.
MAX_PRICE_USD_PER_MTOK = Decimal(1_000_000)


def usd_to_nano(amount: Decimal, *, field: str, maximum: Decimal = MAX_STORABLE_USD) -> int:
    """Converts exactly or refuses: a value finer than one nano-USD would be silently rounded,
    and one beyond ±`maximum` could not be stored."""
    if not amount.is_finite():
        raise BadUserInput(f"{field} must be a finite amount", field=field)
    # Bounded before scaling: Decimal("1e999999999") * 1e9 would overflow Decimal itself.
    if amount > maximum:
        raise BadUserInput(f"{field} must be at most {maximum:f}", field=field)
    if amount < -maximum:
        raise BadUserInput(f"{field} must be at least -{maximum:f}", field=field)
    # quantize, not a product, so "1e-999999999" is refused rather than rounded to zero.
    if amount != amount.quantize(_NANO):
        raise BadUserInput(f"{field} has more than 9 decimal places", field=field)
    return int(amount.scaleb(9))


def nano_to_usd(nano: int) -> Decimal:
    return (Decimal(nano) * _NANO).normalize() if nano else Decimal(0)


def non_negative_usd_to_nano(
    amount: Decimal, *, field: str, maximum: Decimal = MAX_STORABLE_USD
) -> int:
    if amount.is_finite() and amount < 0:
        raise BadUserInput(f"{field} must not be negative", field=field)
    return usd_to_nano(amount, field=field, maximum=maximum)


def budget_to_nano(amount: Decimal, *, field: str) -> int:
    return non_negative_usd_to_nano(amount, field=field, maximum=MAX_BUDGET_USD)


def price_to_nano(amount: Decimal, *, field: str) -> int:
    """A price in USD per million tokens, as nano-USD per million tokens."""
    return non_negative_usd_to_nano(amount, field=field, maximum=MAX_PRICE_USD_PER_MTOK)
