"""Exact money: integer nano-USD (1e-9 USD) in storage, `Decimal` in the domain and the API."""

from __future__ import annotations

from decimal import Decimal

from domain.errors import BadUserInput

NANO_PER_USD = 1_000_000_000
_NANO = Decimal(1) / NANO_PER_USD


def usd_to_nano(amount: Decimal, *, field: str) -> int:
    """Converts exactly or refuses: a value finer than one nano-USD would be silently rounded."""
    if not amount.is_finite():
        raise BadUserInput(f"{field} must be a finite amount")
    nano = amount * NANO_PER_USD
    if nano != nano.to_integral_value():
        raise BadUserInput(f"{field} has more than 9 decimal places")
    return int(nano)


def nano_to_usd(nano: int) -> Decimal:
    return (Decimal(nano) * _NANO).normalize() if nano else Decimal(0)


def non_negative_usd_to_nano(amount: Decimal, *, field: str) -> int:
    nano = usd_to_nano(amount, field=field)
    if nano < 0:
        raise BadUserInput(f"{field} must not be negative")
    return nano
