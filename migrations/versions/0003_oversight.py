"""oversight: discrepancies, transfers, verifications, stocktakes, outbox, subscriptions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 00:55:16.146480
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import inventory.db.types
from inventory.db.append_only import grant_app_role, protect, unprotect

APPEND_ONLY = ["discrepancy_events", "delivery_attempts"]
ALL_APPEND_ONLY = [
    "audit_records",
    "audit_checkpoints",
    "movements",
    "movement_lines",
    *APPEND_ONLY,
]

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbox_events",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", inventory.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("depot", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=40), nullable=True),
        sa.Column("severity", sa.String(length=16), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("dispatched", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_outbox_events")),
        sa.UniqueConstraint("id", name=op.f("uq_outbox_events_id")),
    )
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outbox_events_dispatched"), ["dispatched"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_outbox_events_type"), ["type"], unique=False)

    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=False),
        sa.Column("events", sa.Text(), nullable=False),
        sa.Column("depots", sa.Text(), nullable=True),
        sa.Column("kinds", sa.Text(), nullable=True),
        sa.Column("severities", sa.Text(), nullable=True),
        sa.Column("created_at", inventory.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("disabled_at", inventory.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("disabled_reason", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("subscription_id", sa.Uuid(), nullable=False),
        sa.Column(
            "event_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", inventory.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", inventory.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')", name=op.f("ck_deliveries_status")
        ),
        sa.ForeignKeyConstraint(
            ["event_seq"], ["outbox_events.seq"], name=op.f("fk_deliveries_event_seq_outbox_events")
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_deliveries_subscription_id_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_deliveries_status_next_attempt_at"),
            ["status", "next_attempt_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_deliveries_subscription_id_id"), ["subscription_id", "id"], unique=False
        )

    op.create_table(
        "stocktakes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("depot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("opened_at", inventory.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("opened_by", sa.String(length=200), nullable=False),
        sa.Column("closed_at", inventory.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(length=200), nullable=True),
        sa.CheckConstraint("status IN ('open', 'closed')", name=op.f("ck_stocktakes_status")),
        sa.ForeignKeyConstraint(
            ["depot_id"], ["holders.id"], name=op.f("fk_stocktakes_depot_id_holders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stocktakes")),
    )
    with op.batch_alter_table("stocktakes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stocktakes_depot_id"), ["depot_id"], unique=False)

    op.create_table(
        "delivery_attempts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "delivery_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("at", inventory.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=1000), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_delivery_attempts_delivery_id_deliveries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_attempts")),
    )
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_delivery_attempts_delivery_id"), ["delivery_id"], unique=False
        )

    op.create_table(
        "transfers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "from_holder_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "to_holder_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "transit_holder_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("expected_by", inventory.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("document_ref", sa.String(length=200), nullable=True),
        sa.Column("end_user_ref", sa.String(length=200), nullable=True),
        sa.Column("dispatched_at", inventory.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("dispatch_movement_id", sa.Uuid(), nullable=False),
        sa.Column("received_at", inventory.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("receipt_movement_id", sa.Uuid(), nullable=True),
        sa.Column("delivery_verification_ref", sa.String(length=200), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.CheckConstraint(
            "status IN ('in_transit', 'received', 'received_with_discrepancy', 'cancelled')",
            name=op.f("ck_transfers_status"),
        ),
        sa.ForeignKeyConstraint(
            ["dispatch_movement_id"],
            ["movements.id"],
            name=op.f("fk_transfers_dispatch_movement_id_movements"),
        ),
        sa.ForeignKeyConstraint(
            ["from_holder_id"], ["holders.id"], name=op.f("fk_transfers_from_holder_id_holders")
        ),
        sa.ForeignKeyConstraint(
            ["receipt_movement_id"],
            ["movements.id"],
            name=op.f("fk_transfers_receipt_movement_id_movements"),
        ),
        sa.ForeignKeyConstraint(
            ["to_holder_id"], ["holders.id"], name=op.f("fk_transfers_to_holder_id_holders")
        ),
        sa.ForeignKeyConstraint(
            ["transit_holder_id"],
            ["holders.id"],
            name=op.f("fk_transfers_transit_holder_id_holders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfers")),
        sa.UniqueConstraint("transit_holder_id", name=op.f("uq_transfers_transit_holder_id")),
    )
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_transfers_from_holder_id"), ["from_holder_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_transfers_status_expected_by"), ["status", "expected_by"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_transfers_to_holder_id"), ["to_holder_id"], unique=False
        )

    op.create_table(
        "end_use_verifications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("transfer_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("due_at", inventory.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("done_at", inventory.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("recorded_by", sa.String(length=200), nullable=True),
        sa.Column("note", sa.String(length=4000), nullable=True),
        sa.ForeignKeyConstraint(
            ["transfer_id"],
            ["transfers.id"],
            name=op.f("fk_end_use_verifications_transfer_id_transfers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_end_use_verifications")),
    )
    with op.batch_alter_table("end_use_verifications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_end_use_verifications_done_at_due_at"),
            ["done_at", "due_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_end_use_verifications_transfer_id"), ["transfer_id"], unique=False
        )

    op.create_table(
        "stocktake_counts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("stocktake_id", sa.Uuid(), nullable=False),
        sa.Column("weapon_id", sa.Uuid(), nullable=True),
        sa.Column("serial", sa.String(length=100), nullable=True),
        sa.Column("manufacturer", sa.String(length=100), nullable=True),
        sa.Column("item_type", sa.String(length=64), nullable=True),
        sa.Column("lot_id", sa.Uuid(), nullable=True),
        sa.Column("quantity", sa.BigInteger(), nullable=True),
        sa.Column("counted_at", inventory.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["lot_id"], ["lots.id"], name=op.f("fk_stocktake_counts_lot_id_lots")
        ),
        sa.ForeignKeyConstraint(
            ["stocktake_id"],
            ["stocktakes.id"],
            name=op.f("fk_stocktake_counts_stocktake_id_stocktakes"),
        ),
        sa.ForeignKeyConstraint(
            ["weapon_id"], ["weapons.id"], name=op.f("fk_stocktake_counts_weapon_id_weapons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stocktake_counts")),
    )
    with op.batch_alter_table("stocktake_counts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_stocktake_counts_stocktake_id_lot_id"),
            ["stocktake_id", "lot_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_stocktake_counts_stocktake_id_weapon_id"),
            ["stocktake_id", "weapon_id"],
            unique=False,
        )

    op.create_table(
        "weapon_verifications",
        sa.Column("weapon_id", sa.Uuid(), nullable=False),
        sa.Column("verified_at", inventory.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("stocktake_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["stocktake_id"],
            ["stocktakes.id"],
            name=op.f("fk_weapon_verifications_stocktake_id_stocktakes"),
        ),
        sa.ForeignKeyConstraint(
            ["weapon_id"], ["weapons.id"], name=op.f("fk_weapon_verifications_weapon_id_weapons")
        ),
        sa.PrimaryKeyConstraint("weapon_id", name=op.f("pk_weapon_verifications")),
    )
    with op.batch_alter_table("weapon_verifications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_weapon_verifications_verified_at"), ["verified_at"], unique=False
        )

    op.create_table(
        "discrepancies",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("subject_key", sa.String(length=200), nullable=False),
        sa.Column("depot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("holder_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("weapon_id", sa.Uuid(), nullable=True),
        sa.Column("lot_id", sa.Uuid(), nullable=True),
        sa.Column("quantity", sa.BigInteger(), nullable=True),
        sa.Column("transfer_id", sa.Uuid(), nullable=True),
        sa.Column("stocktake_id", sa.Uuid(), nullable=True),
        sa.Column("verification_id", sa.Uuid(), nullable=True),
        sa.Column("movement_id", sa.Uuid(), nullable=True),
        sa.Column("detected_at", inventory.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("summary", sa.String(length=1000), nullable=False),
        sa.Column("resolved_at", inventory.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "severity IN ('low', 'medium', 'high', 'critical')",
            name=op.f("ck_discrepancies_severity"),
        ),
        sa.CheckConstraint(
            "status IN ('open', 'investigating', 'resolved')", name=op.f("ck_discrepancies_status")
        ),
        sa.ForeignKeyConstraint(
            ["depot_id"], ["holders.id"], name=op.f("fk_discrepancies_depot_id_holders")
        ),
        sa.ForeignKeyConstraint(
            ["holder_id"], ["holders.id"], name=op.f("fk_discrepancies_holder_id_holders")
        ),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_discrepancies_lot_id_lots")),
        sa.ForeignKeyConstraint(
            ["movement_id"], ["movements.id"], name=op.f("fk_discrepancies_movement_id_movements")
        ),
        sa.ForeignKeyConstraint(
            ["stocktake_id"],
            ["stocktakes.id"],
            name=op.f("fk_discrepancies_stocktake_id_stocktakes"),
        ),
        sa.ForeignKeyConstraint(
            ["transfer_id"], ["transfers.id"], name=op.f("fk_discrepancies_transfer_id_transfers")
        ),
        sa.ForeignKeyConstraint(
            ["verification_id"],
            ["end_use_verifications.id"],
            name=op.f("fk_discrepancies_verification_id_end_use_verifications"),
        ),
        sa.ForeignKeyConstraint(
            ["weapon_id"], ["weapons.id"], name=op.f("fk_discrepancies_weapon_id_weapons")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_discrepancies")),
        sa.UniqueConstraint("id", name=op.f("uq_discrepancies_id")),
    )
    with op.batch_alter_table("discrepancies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_discrepancies_depot_id_seq"), ["depot_id", "seq"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_discrepancies_kind_seq"), ["kind", "seq"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_discrepancies_status_seq"), ["status", "seq"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_discrepancies_weapon_id"), ["weapon_id"], unique=False)
        batch_op.create_index(
            "uq_discrepancies_unresolved_subject",
            ["kind", "subject_key"],
            unique=True,
            postgresql_where=sa.text("status <> 'resolved'"),
            sqlite_where=sa.text("status <> 'resolved'"),
        )

    op.create_table(
        "verification_results",
        sa.Column("verification_id", sa.Uuid(), nullable=False),
        sa.Column("weapon_id", sa.Uuid(), nullable=False),
        sa.Column("seen", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["verification_id"],
            ["end_use_verifications.id"],
            name=op.f("fk_verification_results_verification_id_end_use_verifications"),
        ),
        sa.ForeignKeyConstraint(
            ["weapon_id"], ["weapons.id"], name=op.f("fk_verification_results_weapon_id_weapons")
        ),
        sa.PrimaryKeyConstraint(
            "verification_id", "weapon_id", name=op.f("pk_verification_results")
        ),
    )
    op.create_table(
        "discrepancy_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "discrepancy_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("at", inventory.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(length=4000), nullable=True),
        sa.Column("movement_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["discrepancy_seq"],
            ["discrepancies.seq"],
            name=op.f("fk_discrepancy_events_discrepancy_seq_discrepancies"),
        ),
        sa.ForeignKeyConstraint(
            ["movement_id"],
            ["movements.id"],
            name=op.f("fk_discrepancy_events_movement_id_movements"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discrepancy_events")),
    )
    with op.batch_alter_table("discrepancy_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_discrepancy_events_discrepancy_seq"), ["discrepancy_seq"], unique=False
        )

    for table in APPEND_ONLY:
        protect(table)
    grant_app_role(ALL_APPEND_ONLY)


def downgrade() -> None:
    for table in APPEND_ONLY:
        unprotect(table)
    with op.batch_alter_table("discrepancy_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_discrepancy_events_discrepancy_seq"))

    op.drop_table("discrepancy_events")
    op.drop_table("verification_results")
    with op.batch_alter_table("discrepancies", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_discrepancies_unresolved_subject",
            postgresql_where=sa.text("status <> 'resolved'"),
            sqlite_where=sa.text("status <> 'resolved'"),
        )
        batch_op.drop_index(batch_op.f("ix_discrepancies_weapon_id"))
        batch_op.drop_index(batch_op.f("ix_discrepancies_status_seq"))
        batch_op.drop_index(batch_op.f("ix_discrepancies_kind_seq"))
        batch_op.drop_index(batch_op.f("ix_discrepancies_depot_id_seq"))

    op.drop_table("discrepancies")
    with op.batch_alter_table("weapon_verifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_weapon_verifications_verified_at"))

    op.drop_table("weapon_verifications")
    with op.batch_alter_table("stocktake_counts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stocktake_counts_stocktake_id_weapon_id"))
        batch_op.drop_index(batch_op.f("ix_stocktake_counts_stocktake_id_lot_id"))

    op.drop_table("stocktake_counts")
    with op.batch_alter_table("end_use_verifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_end_use_verifications_transfer_id"))
        batch_op.drop_index(batch_op.f("ix_end_use_verifications_done_at_due_at"))

    op.drop_table("end_use_verifications")
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transfers_to_holder_id"))
        batch_op.drop_index(batch_op.f("ix_transfers_status_expected_by"))
        batch_op.drop_index(batch_op.f("ix_transfers_from_holder_id"))

    op.drop_table("transfers")
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_attempts_delivery_id"))

    op.drop_table("delivery_attempts")
    with op.batch_alter_table("stocktakes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stocktakes_depot_id"))

    op.drop_table("stocktakes")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deliveries_subscription_id_id"))
        batch_op.drop_index(batch_op.f("ix_deliveries_status_next_attempt_at"))

    op.drop_table("deliveries")
    op.drop_table("subscriptions")
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_events_type"))
        batch_op.drop_index(batch_op.f("ix_outbox_events_dispatched"))

    op.drop_table("outbox_events")
