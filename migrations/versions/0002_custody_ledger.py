"""custody ledger: weapons, lots, movements, lines, holdings

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 00:50:08.161349
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import inventory.db.types
from inventory.db.append_only import grant_app_role, protect, unprotect

# The journal is append-only; audit tables from 0001 keep their protection.
APPEND_ONLY = ["movements", "movement_lines"]
ALL_APPEND_ONLY = ["audit_records", "audit_checkpoints", *APPEND_ONLY]

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "movements",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column(
            "from_holder_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "to_holder_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("occurred_at", inventory.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", inventory.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("document_ref", sa.String(length=200), nullable=True),
        sa.Column("due_back_at", inventory.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("case_ref", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("certificate_ref", sa.String(length=200), nullable=True),
        sa.Column("note", sa.String(length=2000), nullable=True),
        sa.Column("reverses", sa.Uuid(), nullable=True),
        sa.Column("transfer_id", sa.Uuid(), nullable=True),
        sa.Column("late_entry", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('receipt', 'issue', 'return', 'loss', 'recovery', 'expenditure', "
            "'destruction', 'reversal', 'dispatch', 'receive', 'cancel')",
            name=op.f("ck_movements_kind"),
        ),
        sa.CheckConstraint(
            "from_holder_id <> to_holder_id", name=op.f("ck_movements_distinct_holders")
        ),
        sa.ForeignKeyConstraint(
            ["from_holder_id"], ["holders.id"], name=op.f("fk_movements_from_holder_id_holders")
        ),
        sa.ForeignKeyConstraint(
            ["reverses"], ["movements.id"], name=op.f("fk_movements_reverses_movements")
        ),
        sa.ForeignKeyConstraint(
            ["to_holder_id"], ["holders.id"], name=op.f("fk_movements_to_holder_id_holders")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_movements")),
        sa.UniqueConstraint("id", name=op.f("uq_movements_id")),
        sa.UniqueConstraint("reverses", name=op.f("uq_movements_reverses")),
    )
    with op.batch_alter_table("movements", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_movements_from_holder_id_seq"), ["from_holder_id", "seq"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_movements_kind_seq"), ["kind", "seq"], unique=False)
        batch_op.create_index(batch_op.f("ix_movements_recorded_at"), ["recorded_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_movements_to_holder_id_seq"), ["to_holder_id", "seq"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_movements_transfer_id"), ["transfer_id"], unique=False)

    op.create_table(
        "lots",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "item_type_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("lot_number", sa.String(length=100), nullable=False),
        sa.Column("manufacturer", sa.String(length=100), nullable=True),
        sa.Column("year_of_manufacture", sa.Integer(), nullable=True),
        sa.Column(
            "registered_by", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["item_type_id"], ["item_types.id"], name=op.f("fk_lots_item_type_id_item_types")
        ),
        sa.ForeignKeyConstraint(
            ["registered_by"], ["movements.seq"], name=op.f("fk_lots_registered_by_movements")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lots")),
        sa.UniqueConstraint(
            "item_type_id", "lot_number", name=op.f("uq_lots_item_type_id_lot_number")
        ),
    )
    op.create_table(
        "weapons",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "item_type_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("manufacturer", sa.String(length=100), nullable=False),
        sa.Column("serial", sa.String(length=100), nullable=False),
        sa.Column("marking_status", sa.String(length=16), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("year_of_manufacture", sa.Integer(), nullable=True),
        sa.Column("country_of_manufacture", sa.String(length=64), nullable=True),
        sa.Column("import_marks", sa.String(length=200), nullable=True),
        sa.Column(
            "registered_by", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.CheckConstraint(
            "marking_status IN ('intact', 'altered', 'obliterated', 're-marked')",
            name=op.f("ck_weapons_marking_status"),
        ),
        sa.CheckConstraint(
            "origin IN ('procured', 'donated', 'captured', 'recovered')",
            name=op.f("ck_weapons_origin"),
        ),
        sa.ForeignKeyConstraint(
            ["item_type_id"], ["item_types.id"], name=op.f("fk_weapons_item_type_id_item_types")
        ),
        sa.ForeignKeyConstraint(
            ["registered_by"], ["movements.seq"], name=op.f("fk_weapons_registered_by_movements")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_weapons")),
        sa.UniqueConstraint(
            "manufacturer",
            "item_type_id",
            "serial",
            name=op.f("uq_weapons_manufacturer_item_type_id_serial"),
        ),
    )
    with op.batch_alter_table("weapons", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_weapons_serial"), ["serial"], unique=False)

    op.create_table(
        "lot_holdings",
        sa.Column("lot_id", sa.Uuid(), nullable=False),
        sa.Column(
            "holder_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("quantity >= 0", name=op.f("ck_lot_holdings_not_negative")),
        sa.ForeignKeyConstraint(
            ["holder_id"], ["holders.id"], name=op.f("fk_lot_holdings_holder_id_holders")
        ),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_lot_holdings_lot_id_lots")),
        sa.PrimaryKeyConstraint("lot_id", "holder_id", name=op.f("pk_lot_holdings")),
    )
    with op.batch_alter_table("lot_holdings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lot_holdings_holder_id"), ["holder_id"], unique=False)

    op.create_table(
        "movement_lines",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "movement_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("weapon_id", sa.Uuid(), nullable=True),
        sa.Column("lot_id", sa.Uuid(), nullable=True),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("registers", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "(weapon_id IS NULL) <> (lot_id IS NULL)", name=op.f("ck_movement_lines_weapon_or_lot")
        ),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_movement_lines_positive_quantity")),
        sa.CheckConstraint(
            "weapon_id IS NULL OR quantity = 1", name=op.f("ck_movement_lines_one_weapon")
        ),
        sa.ForeignKeyConstraint(
            ["lot_id"], ["lots.id"], name=op.f("fk_movement_lines_lot_id_lots")
        ),
        sa.ForeignKeyConstraint(
            ["movement_seq"],
            ["movements.seq"],
            name=op.f("fk_movement_lines_movement_seq_movements"),
        ),
        sa.ForeignKeyConstraint(
            ["weapon_id"], ["weapons.id"], name=op.f("fk_movement_lines_weapon_id_weapons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_movement_lines")),
        sa.UniqueConstraint(
            "movement_seq", "line_no", name=op.f("uq_movement_lines_movement_seq_line_no")
        ),
    )
    with op.batch_alter_table("movement_lines", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_movement_lines_lot_id_movement_seq"),
            ["lot_id", "movement_seq"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_movement_lines_weapon_id_movement_seq"),
            ["weapon_id", "movement_seq"],
            unique=False,
        )

    op.create_table(
        "weapon_holdings",
        sa.Column("weapon_id", sa.Uuid(), nullable=False),
        sa.Column(
            "holder_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "movement_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["holder_id"], ["holders.id"], name=op.f("fk_weapon_holdings_holder_id_holders")
        ),
        sa.ForeignKeyConstraint(
            ["movement_seq"],
            ["movements.seq"],
            name=op.f("fk_weapon_holdings_movement_seq_movements"),
        ),
        sa.ForeignKeyConstraint(
            ["weapon_id"], ["weapons.id"], name=op.f("fk_weapon_holdings_weapon_id_weapons")
        ),
        sa.PrimaryKeyConstraint("weapon_id", name=op.f("pk_weapon_holdings")),
    )
    with op.batch_alter_table("weapon_holdings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_weapon_holdings_holder_id"), ["holder_id"], unique=False
        )

    for table in APPEND_ONLY:
        protect(table)
    grant_app_role(ALL_APPEND_ONLY)


def downgrade() -> None:
    for table in APPEND_ONLY:
        unprotect(table)
    with op.batch_alter_table("weapon_holdings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_weapon_holdings_holder_id"))

    op.drop_table("weapon_holdings")
    with op.batch_alter_table("movement_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_movement_lines_weapon_id_movement_seq"))
        batch_op.drop_index(batch_op.f("ix_movement_lines_lot_id_movement_seq"))

    op.drop_table("movement_lines")
    with op.batch_alter_table("lot_holdings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lot_holdings_holder_id"))

    op.drop_table("lot_holdings")
    with op.batch_alter_table("weapons", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_weapons_serial"))

    op.drop_table("weapons")
    op.drop_table("lots")
    with op.batch_alter_table("movements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_movements_transfer_id"))
        batch_op.drop_index(batch_op.f("ix_movements_to_holder_id_seq"))
        batch_op.drop_index(batch_op.f("ix_movements_recorded_at"))
        batch_op.drop_index(batch_op.f("ix_movements_kind_seq"))
        batch_op.drop_index(batch_op.f("ix_movements_from_holder_id_seq"))

    op.drop_table("movements")
