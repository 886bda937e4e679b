"""accountability: discrepancy kinds checked by the database (with returned_elsewhere and
recovered_elsewhere), status changes only through discrepancy events, the application role's
UPDATE narrowed to the columns it changes, subscriptions owned by a token, active token names unique

Revision ID: 0010
Revises: 0009 (issues 21, 18 and 16 landed first)
Create Date: 2026-12-02 02:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from inventory.db.append_only import (
    check_values,
    narrow_app_role,
    protect_lifecycle,
    unprotect_lifecycle,
)

# Frozen here: the kinds as of this revision (the domain's DiscrepancyKind).
DISCREPANCY_KINDS = (
    "transit_overdue",
    "receipt_shortfall",
    "receipt_surplus",
    "return_overdue",
    "count_missing",
    "count_unexpected",
    "count_variance",
    "verification_overdue",
    "reported_loss",
    "sighting_outside_custody",
    "unknown_serial_sighted",
    "end_use_missing",
    "end_use_verification_overdue",
    "late_entry",
    "returned_elsewhere",
    "recovered_elsewhere",
)
revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    check_values("discrepancies", "kind", DISCREPANCY_KINDS)
    protect_lifecycle()
    # A plain column (no foreign key): adding one on SQLite would rebuild a table others
    # point at. Subscriptions made before this revision belong to no token: admins see them.
    op.add_column("subscriptions", sa.Column("token_id", sa.Uuid(), nullable=True))
    op.create_index("ix_subscriptions_token_id", "subscriptions", ["token_id"])
    op.create_index(
        "uq_tokens_active_name",
        "tokens",
        ["name"],
        unique=True,
        sqlite_where=sa.text("revoked_at IS NULL"),
        postgresql_where=sa.text("revoked_at IS NULL"),
    )
    narrow_app_role()  # grants nothing: every table keeps what its own migration gave, less UPDATE


def downgrade() -> None:
    op.drop_index("uq_tokens_active_name", table_name="tokens")
    op.drop_index("ix_subscriptions_token_id", table_name="subscriptions")
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("token_id")
    unprotect_lifecycle()
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE discrepancies DROP CONSTRAINT IF EXISTS ck_discrepancies_kind")
    else:
        op.execute("DROP TRIGGER IF EXISTS discrepancies_kind_check_insert")
        op.execute("DROP TRIGGER IF EXISTS discrepancies_kind_check_update")
