"""registry append-only: weapons and lots refuse UPDATE and DELETE like the ledger; the application
role may no longer insert, delete or truncate the audit chain head

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 05:40:00.000000
"""

from collections.abc import Sequence

from inventory.db.append_only import grant_app_role, protect, unprotect

APPEND_ONLY = ["weapons", "lots"]  # a registration is never edited; movements say the rest
ALL_APPEND_ONLY = [
    "audit_records",
    "audit_checkpoints",
    "movements",
    "movement_lines",
    "discrepancy_events",
    "delivery_attempts",
    *APPEND_ONLY,
]

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in APPEND_ONLY:
        protect(table)
    grant_app_role(ALL_APPEND_ONLY)  # re-applies every grant, now with audit_head's revokes


def downgrade() -> None:
    for table in APPEND_ONLY:
        unprotect(table)
    # The narrower privileges on audit_head stay: 0003's code never needed them.
