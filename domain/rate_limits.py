"""Rate-limit contracts shared by the limiter (infra/), admission and the API (graph/)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestWindow:
    """The caller's per-minute request window after this request was counted."""

    limit: int
    remaining: int
    reset_at: datetime
