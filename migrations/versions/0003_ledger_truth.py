"""Ledger truth: refused attempts (`token_source = 'NONE'`), recovered rows, the vendor's model id.

- `token_source` accepts `NONE`: an attempt the provider refused (429, 5xx, 401/403, other 4xx)
  keeps its row with 0 tokens and 0 cost (docs/metering_policy.md).
- `recovered`: the row was written by recovery for a call a dead runner had in flight.
- `provider_model`: the vendor's model id at call time, for `pantheon ledger reconcile`; rows
  written before this revision have none.
- The cost report index also carries `token_source` (reports count refused calls), so it is
  rebuilt: a plain CREATE INDEX, which blocks usage writes while it builds (see 0002 for building
  it by hand first on a large ledger; this revision then finds it and moves on).

On SQLite the table is rebuilt (batch mode): a CHECK constraint cannot be altered there.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 19:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "usage_records"
CHECK = "ck_usage_records_token_source"
INDEX = "ix_usage_records_cost_report"
OLD_SOURCES = ("PROVIDER", "ESTIMATED")
NEW_SOURCES = ("PROVIDER", "ESTIMATED", "NONE")
OLD_COLUMNS = [
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
NEW_COLUMNS = [*OLD_COLUMNS[:7], "token_source", *OLD_COLUMNS[7:]]


def _sources(values: Sequence[str]) -> str:
    return "token_source IN ({})".format(", ".join(f"'{value}'" for value in values))


def upgrade() -> None:
    op.drop_index(op.f(INDEX), table_name=TABLE)
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_constraint(op.f(CHECK), type_="check")
        batch.create_check_constraint(op.f(CHECK), _sources(NEW_SOURCES))
        batch.add_column(sa.Column("provider_model", sa.String(length=128), nullable=True))
        # Existing rows were all observed by a live runner; the default only fills them in.
        batch.add_column(
            sa.Column("recovered", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table(TABLE) as batch:
        batch.alter_column("recovered", server_default=None)
    op.create_index(op.f(INDEX), TABLE, NEW_COLUMNS, if_not_exists=True)


def downgrade() -> None:
    # Refused rows have no place in the old schema's vocabulary: they become estimates of 0.
    op.execute(
        sa.text(f"UPDATE {TABLE} SET token_source = 'ESTIMATED' WHERE token_source = 'NONE'")
    )
    op.drop_index(op.f(INDEX), table_name=TABLE)
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_column("recovered")
        batch.drop_column("provider_model")
        batch.drop_constraint(op.f(CHECK), type_="check")
        batch.create_check_constraint(op.f(CHECK), _sources(OLD_SOURCES))
    op.create_index(op.f(INDEX), TABLE, OLD_COLUMNS, if_not_exists=True)
