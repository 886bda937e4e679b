"""audit_head privileges: the application role may no longer delete or insert the chain head

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 05:40:00.000000
"""

from collections.abc import Sequence

from inventory.db.append_only import grant_app_role

ALL_APPEND_ONLY = [
    "audit_records",
    "audit_checkpoints",
    "movements",
    "movement_lines",
    "discrepancy_events",
    "delivery_attempts",
]

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    grant_app_role(ALL_APPEND_ONLY)  # re-applies every grant, now with audit_head's revokes


def downgrade() -> None:
    pass  # a narrower privilege is safe to keep; 0003's grants never needed these
