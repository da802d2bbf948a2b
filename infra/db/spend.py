"""The one month-spend query: billable cost in nano-USD since a month's start, per user.

Budgets (in the turn's first unit of work) and reads (User.monthSpendUsd) both use it, so a
user's remaining budget means the same thing everywhere.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select

from domain.enums import BillingCategory
from infra.db.models import UsageRecordRow


def month_spend_query(user_ids: Sequence[uuid.UUID], *, since: datetime) -> Select[Any]:
    return (
        select(UsageRecordRow.user_id, func.coalesce(func.sum(UsageRecordRow.cost_nano), 0))
        .where(
            UsageRecordRow.user_id.in_(user_ids),
            UsageRecordRow.created_at >= since,
            UsageRecordRow.billing_category == BillingCategory.USER_BILLABLE,
        )
        .group_by(UsageRecordRow.user_id)
    )
