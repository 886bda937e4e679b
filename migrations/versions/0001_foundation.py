"""foundation: reference data, tokens, audit log, idempotency

Revision ID: 0001
Revises:
Create Date: 2026-11-28 00:40:14.918487
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import inventory.db.types
from inventory.db.append_only import grant_app_role, protect, unprotect

APPEND_ONLY = ["audit_records", "audit_checkpoints"]
SYSTEM_HOLDERS = ["lost", "expended", "destroyed"]

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("at", inventory.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_checkpoints")),
    )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "audit_records",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("recorded_at", inventory.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_records")),
    )
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_records_action_seq"), ["action", "seq"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_audit_records_actor_seq"), ["actor", "seq"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_audit_records_subject_seq"), ["subject", "seq"], unique=False
        )

    op.create_table(
        "holders",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("country", sa.String(length=64), nullable=True),
        sa.Column("party_kind", sa.String(length=16), nullable=True),
        sa.Column(
            "home_depot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("created_at", inventory.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('depot', 'unit', 'party', 'transit', 'lost', 'expended', 'destroyed')",
            name=op.f("ck_holders_kind"),
        ),
        sa.CheckConstraint(
            "party_kind IS NULL OR "
            "party_kind IN ('supplier', 'recipient', 'manufacturer', 'other')",
            name=op.f("ck_holders_party_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["home_depot_id"], ["holders.id"], name=op.f("fk_holders_home_depot_id_holders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holders")),
        sa.UniqueConstraint("kind", "code", name=op.f("uq_holders_kind_code")),
    )
    op.create_table(
        "item_types",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("calibre", sa.String(length=64), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("created_at", inventory.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "category IN ('weapon', 'ammunition')", name=op.f("ck_item_types_category")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_item_types")),
        sa.UniqueConstraint("code", name=op.f("uq_item_types_code")),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", inventory.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.Column("revoked_at", inventory.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "role IN ('admin', 'clerk', 'auditor', 'monitor')", name=op.f("ck_tokens_role")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tokens")),
        sa.UniqueConstraint("secret_sha256", name=op.f("uq_tokens_secret_sha256")),
    )
    op.create_table(
        "idempotent_responses",
        sa.Column("token_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", inventory.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["token_id"], ["tokens.id"], name=op.f("fk_idempotent_responses_token_id_tokens")
        ),
        sa.PrimaryKeyConstraint("token_id", "key", name=op.f("pk_idempotent_responses")),
    )
    op.create_table(
        "token_depots",
        sa.Column("token_id", sa.Uuid(), nullable=False),
        sa.Column(
            "holder_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["holder_id"], ["holders.id"], name=op.f("fk_token_depots_holder_id_holders")
        ),
        sa.ForeignKeyConstraint(
            ["token_id"], ["tokens.id"], name=op.f("fk_token_depots_token_id_tokens")
        ),
        sa.PrimaryKeyConstraint("token_id", "holder_id", name=op.f("pk_token_depots")),
    )
    op.bulk_insert(
        sa.table("audit_head", sa.column("id"), sa.column("seq"), sa.column("hash")),
        [{"id": 1, "seq": 0, "hash": "0" * 64}],
    )
    holders = sa.table(
        "holders",
        sa.column("kind"),
        sa.column("code"),
        sa.column("name"),
        sa.column("created_at", inventory.db.types.UTCDateTime()),
    )
    op.bulk_insert(
        holders,
        [
            {
                "kind": kind,
                "code": kind.upper(),
                "name": f"System account: {kind}",
                "created_at": datetime(2026, 1, 1, tzinfo=UTC),
            }
            for kind in SYSTEM_HOLDERS
        ],
    )
    for table in APPEND_ONLY:
        protect(table)
    grant_app_role(APPEND_ONLY)


def downgrade() -> None:
    for table in APPEND_ONLY:
        unprotect(table)
    op.drop_table("token_depots")
    op.drop_table("idempotent_responses")
    op.drop_table("tokens")
    op.drop_table("item_types")
    op.drop_table("holders")
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_records_subject_seq"))
        batch_op.drop_index(batch_op.f("ix_audit_records_actor_seq"))
        batch_op.drop_index(batch_op.f("ix_audit_records_action_seq"))

    op.drop_table("audit_records")
    op.drop_table("audit_head")
    op.drop_table("audit_checkpoints")
