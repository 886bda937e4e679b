"""holder counts: weapons per holder (and lost from it) and each depot's store by freshness, kept
with every movement so the current accountability report reads a few rows per depot; filled here
from the current holdings

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import inventory.db.types
from inventory.db.append_only import grant_app_role_on

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here: holder_counts.counts_from and freshness_from as of this revision, over the holdings.
FILL_COUNTS = """
INSERT INTO holder_weapon_counts (holder_id, lost, weapons)
SELECT CASE WHEN h.kind = 'lost' THEN m.from_holder_id ELSE wh.holder_id END,
    h.kind = 'lost', count(*)
FROM weapon_holdings wh
JOIN holders h ON h.id = wh.holder_id
JOIN movements m ON m.seq = wh.movement_seq
GROUP BY CASE WHEN h.kind = 'lost' THEN m.from_holder_id ELSE wh.holder_id END, h.kind = 'lost'
"""
FILL_FRESHNESS = """
INSERT INTO in_store_freshness (holder_id, fresh_since, weapons)
SELECT wh.holder_id,
    CASE WHEN v.verified_at > m.recorded_at THEN v.verified_at ELSE m.recorded_at END, count(*)
FROM weapon_holdings wh
JOIN holders h ON h.id = wh.holder_id
JOIN movements m ON m.seq = wh.movement_seq
LEFT JOIN weapon_verifications v ON v.weapon_id = wh.weapon_id
WHERE h.kind = 'depot'
GROUP BY wh.holder_id,
    CASE WHEN v.verified_at > m.recorded_at THEN v.verified_at ELSE m.recorded_at END
"""


def upgrade() -> None:
    op.create_table(
        "holder_weapon_counts",
        sa.Column(
            "holder_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("lost", sa.Boolean(), nullable=False),
        sa.Column("weapons", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["holder_id"], ["holders.id"], name=op.f("fk_holder_weapon_counts_holder_id_holders")
        ),
        sa.PrimaryKeyConstraint("holder_id", "lost", name=op.f("pk_holder_weapon_counts")),
    )
    op.create_table(
        "in_store_freshness",
        sa.Column(
            "holder_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("fresh_since", inventory.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("weapons", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["holder_id"], ["holders.id"], name=op.f("fk_in_store_freshness_holder_id_holders")
        ),
        sa.PrimaryKeyConstraint("holder_id", "fresh_since", name=op.f("pk_in_store_freshness")),
    )
    op.execute(FILL_COUNTS)
    op.execute(FILL_FRESHNESS)
    # Summaries: a row is added to, and removed when it reaches 0.
    grant_app_role_on(
        {
            "holder_weapon_counts": "SELECT, INSERT, UPDATE, DELETE",
            "in_store_freshness": "SELECT, INSERT, UPDATE, DELETE",
        }
    )


def downgrade() -> None:
    op.drop_table("in_store_freshness")
    op.drop_table("holder_weapon_counts")
