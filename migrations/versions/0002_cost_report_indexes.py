"""Cost report index: usage rows by time, with every report dimension and summed column.

A plain CREATE INDEX: it blocks usage writes while it builds (a few seconds per million rows).
`CONCURRENTLY` cannot run here: a second `pantheon migrate` waiting on the advisory lock holds a
snapshot, which a concurrent build waits for (a deadlock). On a ledger too large for that pause,
build it by hand first (`CREATE INDEX CONCURRENTLY ix_usage_records_cost_report ON usage_records
(<the columns below>)`, and check it is not INVALID); this revision then finds it and moves on.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 03:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_usage_records_cost_report"
COLUMNS = [
    "created_at",
    "user_id",
    "agent_key",
    "model_alias",
    "call_kind",
    "billing_category",
    "unpriced",
    "prompt_tokens",
    "completion_tokens",
    "cost_nano",
]


def upgrade() -> None:
    op.create_index(op.f(NAME), "usage_records", COLUMNS, if_not_exists=True)


def downgrade() -> None:
    op.drop_index(op.f(NAME), table_name="usage_records")
