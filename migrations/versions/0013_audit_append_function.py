"""audit append as a function (PostgreSQL): the server plans its statement once per connection

The append ran as one simple-protocol query with its COMMIT (audit_log.append_and_commit), which
the server parsed and planned on every write; a PL/pgSQL function keeps its plan for the
connection's life. The hash is the one audit_chain.chain_hash computes:
sha256(prev_hash bytes || before || seq as text || after), hex.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 18:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUDIT_APPEND = """
CREATE FUNCTION audit_append(
    record_before bytea, record_after bytea, record_recorded_at timestamptz,
    record_actor text, record_role text, record_action text, record_subject text,
    record_request_id text
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    appended bigint;
BEGIN
    -- FOR UPDATE makes `previous` the newest head even after waiting for its lock.
    WITH previous AS (
        SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE
    ), advanced AS (
        UPDATE audit_head AS head
        SET seq = previous.seq + 1,
            hash = encode(sha256(decode(previous.hash, 'hex') || record_before
                || convert_to(CAST(previous.seq + 1 AS text), 'UTF8') || record_after), 'hex')
        FROM previous
        WHERE head.id = 1
        RETURNING head.seq, head.hash, previous.hash AS prev_hash
    )
    INSERT INTO audit_records
        (seq, recorded_at, actor, role, action, subject, request_id, body, prev_hash, hash)
    SELECT advanced.seq, record_recorded_at, record_actor, record_role, record_action,
        record_subject, record_request_id,
        record_before || convert_to(CAST(advanced.seq AS text), 'UTF8') || record_after,
        advanced.prev_hash, advanced.hash
    FROM advanced
    RETURNING audit_records.seq INTO appended;
    RETURN appended;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(AUDIT_APPEND)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION audit_append")
