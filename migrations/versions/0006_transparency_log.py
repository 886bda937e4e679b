"""transparency log: stored Merkle subtree hashes, signed tree heads, witnesses, cosignatures

The hashes, checkpoints and cosignatures are append-only like the audit log. The tree is filled by
`inventory log integrate` (or the worker's next checkpoint), not here: a migration holds its lock
on the schema, and integrating a large log is a batch job of its own.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-02 02:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import inventory.db.types
from inventory.db.append_only import grant_app_role_on, protect, unprotect

APPEND_ONLY = ["log_hashes", "log_checkpoints", "log_cosignatures"]

revision: str = "0006"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "log_hashes",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("idx", name=op.f("pk_log_hashes")),
    )
    op.create_table(
        "log_checkpoints",
        sa.Column("tree_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("signed_at", inventory.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tree_size", name=op.f("pk_log_checkpoints")),
    )
    op.create_table(
        "log_witnesses",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("vkey", sa.String(length=400), nullable=False),
        sa.Column("registered_at", inventory.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("registered_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_log_witnesses")),
    )
    op.create_table(
        "log_cosignatures",
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("witness", sa.String(length=200), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("line", sa.String(length=400), nullable=False),
        sa.Column("received_at", inventory.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tree_size"],
            ["log_checkpoints.tree_size"],
            name=op.f("fk_log_cosignatures_tree_size_log_checkpoints"),
        ),
        sa.ForeignKeyConstraint(
            ["witness"],
            ["log_witnesses.name"],
            name=op.f("fk_log_cosignatures_witness_log_witnesses"),
        ),
        sa.PrimaryKeyConstraint("tree_size", "witness", name=op.f("pk_log_cosignatures")),
    )
    for table in APPEND_ONLY:
        protect(table)
    # Only these tables' privileges: the others keep what earlier migrations gave.
    grant_app_role_on(
        {
            **{table: "SELECT, INSERT" for table in APPEND_ONLY},
            "log_witnesses": "SELECT, INSERT, DELETE",
        }
    )


def downgrade() -> None:
    for table in APPEND_ONLY:
        unprotect(table)
    op.drop_table("log_cosignatures")
    op.drop_table("log_witnesses")
    op.drop_table("log_checkpoints")
    op.drop_table("log_hashes")
