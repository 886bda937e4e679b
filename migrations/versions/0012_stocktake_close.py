"""stocktake close: weapon_verifications without foreign keys, so closing a stocktake writes its
verifications without a referential check per weapon (PostgreSQL checks them row by row; at
100,000 weapons that was a third of the close: notes/20-stocktake.md). What the keys guarded holds:
the rows are written only by the close, from the depot's holdings (which reference weapons) and
the stocktake it has locked; weapons are never deleted (0004), and a stocktake that verified a
weapon has counted it, so its stocktake_counts rows keep it from being deleted.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 18:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYS = (
    ("fk_weapon_verifications_stocktake_id_stocktakes", "stocktake_id", "stocktakes"),
    ("fk_weapon_verifications_weapon_id_weapons", "weapon_id", "weapons"),
)


def upgrade() -> None:
    with op.batch_alter_table("weapon_verifications", schema=None) as batch_op:
        for name, _, _ in KEYS:
            batch_op.drop_constraint(name, type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("weapon_verifications", schema=None) as batch_op:
        for name, column, table in KEYS:
            batch_op.create_foreign_key(name, table, [column], ["id"])
