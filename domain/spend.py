"""Budget arithmetic shared by budgets and reports: months are UTC calendar months."""

from __future__ import annotations

from datetime import UTC, datetime


def month_start(now: datetime) -> datetime:
    """The first instant of `now`'s UTC calendar month."""
    utc = now.astimezone(UTC)
    return utc.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
