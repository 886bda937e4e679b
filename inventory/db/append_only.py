"""DDL that makes ledger and audit tables append-only, for use inside migrations.

Triggers refuse UPDATE and DELETE on both databases (and TRUNCATE on PostgreSQL). On PostgreSQL the
application role (Settings.app_role; the migration role owns the tables) is also denied those
privileges, so even a bug that disabled a trigger could not change the books through the app.
"""

from __future__ import annotations

import os
import re

from alembic import op

PG_REFUSE_FUNCTION = """
CREATE OR REPLACE FUNCTION inventory_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'table % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$
"""


def app_role() -> str:
    role = os.environ.get("INVENTORY_APP_ROLE", "inventory_app")
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", role):
        raise ValueError(f"INVENTORY_APP_ROLE {role!r} is not a plain role name")
    return role


def protect(table: str) -> None:
    """Install the append-only triggers on `table`."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_REFUSE_FUNCTION)
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION inventory_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION inventory_refuse_change()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} BEGIN "
                f"SELECT RAISE(ABORT, 'table {table} is append-only: {verb} refused'); END"
            )


def unprotect(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    else:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")


# Tables the application never updates (entered once, then only read), and the columns the app
# may update on the rest it changes at all. Every other table's rows it writes once (INSERT) or
# keeps as a projection/queue (weapon_holdings, lot_holdings, outbox_events, deliveries,
# weapon_verifications, audit_head: see README "PostgreSQL roles").
NEVER_UPDATED = [
    "holders",
    "item_types",
    "token_depots",
    "verification_results",
    "stocktake_counts",
    "idempotent_responses",
    "log_witnesses",  # added and removed, never edited (issue 21)
]
UPDATED_COLUMNS = {
    "discrepancies": ("status", "resolved_at"),  # only with an event: see protect_lifecycle
    "tokens": ("revoked_at",),
    "transfers": ("status", "received_at", "receipt_movement_id", "delivery_verification_ref"),
    "stocktakes": ("status", "closed_at", "closed_by"),
    "end_use_verifications": ("done_at", "recorded_by", "note"),
    "subscriptions": ("disabled_at", "disabled_reason", "consecutive_failures", "paused_until"),
}


def _narrow_updates(role: str) -> str:
    """SQL narrowing the role's UPDATE to UPDATED_COLUMNS, skipping tables not made yet (an
    older migration re-applying grants)."""
    statements = [  # a discrepancy is never removed, only resolved
        "IF to_regclass('discrepancies') IS NOT NULL THEN "
        f"REVOKE DELETE, TRUNCATE ON discrepancies FROM {role}; END IF;"
    ]
    for table in NEVER_UPDATED:
        statements.append(
            f"IF to_regclass('{table}') IS NOT NULL THEN "
            f"REVOKE UPDATE ON {table} FROM {role}; END IF;"
        )
    for table, columns in UPDATED_COLUMNS.items():
        statements.append(
            f"IF to_regclass('{table}') IS NOT NULL THEN "
            f"REVOKE UPDATE ON {table} FROM {role}; "
            f"GRANT UPDATE ({', '.join(columns)}) ON {table} TO {role}; END IF;"
        )
    return " ".join(statements)


def narrow_app_role() -> None:
    """Take from the application role the UPDATEs it does not need (NEVER_UPDATED,
    UPDATED_COLUMNS) and DELETE on discrepancies, granting nothing else (PostgreSQL; a no-op
    elsewhere). Every column listed must exist: a migration that re-applies `grant_app_role`
    (which grants UPDATE on every table) must call this after it."""
    if op.get_bind().dialect.name != "postgresql":
        return
    role = app_role()
    op.execute(
        f"""DO $$ BEGIN
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
            {_narrow_updates(role)}
        END IF;
        END $$"""
    )


def grant_app_role(append_only_tables: list[str]) -> None:
    """Give the application role what it needs and no more (PostgreSQL; a no-op on SQLite and
    where the role has not been created, e.g. a single-role development database)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    role = app_role()
    revokes = "".join(
        f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {role}; " for table in append_only_tables
    )
    # The chain head is one row the app moves forward (UPDATE) but never adds or removes.
    revokes += f"REVOKE INSERT, DELETE, TRUNCATE ON audit_head FROM {role}; "
    op.execute(
        f"""DO $$ BEGIN
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
            GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
            GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role};
            {revokes}
        END IF;
        END $$"""
    )


# A discrepancy's status and resolved_at change only as its latest event says (investigate:
# open -> investigating; resolve: -> resolved at the event's time); nothing else about it changes
# and it is never deleted. The app appends the event first, then updates (services.discrepancies).
_FIXED_COLUMNS = (
    "seq id kind severity subject_key depot_id holder_id weapon_id lot_id quantity transfer_id "
    "stocktake_id verification_id movement_id detected_at summary"
).split()
_EXPLAINED = """(
    (latest.action = 'investigate' AND OLD.status = 'open' AND NEW.status = 'investigating'
        AND NEW.resolved_at IS NULL)
    OR (latest.action = 'resolve' AND OLD.status IN ('open', 'investigating')
        AND NEW.status = 'resolved' AND NEW.resolved_at = latest.at)
)"""
_LATEST = (
    "SELECT action, at FROM discrepancy_events WHERE discrepancy_seq = NEW.seq "
    "ORDER BY id DESC LIMIT 1"
)
PG_LIFECYCLE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION inventory_discrepancy_lifecycle() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE latest RECORD;
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'discrepancies are never deleted' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF ({", ".join(f"NEW.{c}" for c in _FIXED_COLUMNS)})
        IS DISTINCT FROM ({", ".join(f"OLD.{c}" for c in _FIXED_COLUMNS)}) THEN
        RAISE EXCEPTION 'discrepancy %: only status and resolved_at change', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.status IS NOT DISTINCT FROM OLD.status
        AND NEW.resolved_at IS NOT DISTINCT FROM OLD.resolved_at THEN
        RETURN NEW;
    END IF;
    {_LATEST.replace("SELECT action, at", "SELECT action, at INTO latest")};
    IF NOT FOUND OR NOT {_EXPLAINED} THEN
        RAISE EXCEPTION 'discrepancy %: % -> % is not explained by its latest event; append one',
            OLD.id, OLD.status, NEW.status USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$
"""


def protect_lifecycle() -> None:
    """Install the discrepancy lifecycle triggers (both databases)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_LIFECYCLE_FUNCTION)
        op.execute(
            "CREATE TRIGGER discrepancies_lifecycle BEFORE UPDATE OR DELETE ON discrepancies "
            "FOR EACH ROW EXECUTE FUNCTION inventory_discrepancy_lifecycle()"
        )
        op.execute(
            "CREATE TRIGGER discrepancies_no_truncate BEFORE TRUNCATE ON discrepancies "
            "FOR EACH STATEMENT EXECUTE FUNCTION inventory_refuse_change()"
        )
        return
    changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in _FIXED_COLUMNS)
    op.execute(
        "CREATE TRIGGER discrepancies_fixed_columns BEFORE UPDATE ON discrepancies "
        f"WHEN {changed} BEGIN "
        "SELECT RAISE(ABORT, 'discrepancies: only status and resolved_at change'); END"
    )
    op.execute(
        "CREATE TRIGGER discrepancies_lifecycle BEFORE UPDATE ON discrepancies "
        "WHEN NEW.status IS NOT OLD.status OR NEW.resolved_at IS NOT OLD.resolved_at BEGIN "
        "SELECT RAISE(ABORT, 'discrepancies: a status change needs its event first') "
        f"WHERE NOT EXISTS (SELECT 1 FROM ({_LATEST}) AS latest WHERE {_EXPLAINED}); END"
    )
    op.execute(
        "CREATE TRIGGER discrepancies_no_delete BEFORE DELETE ON discrepancies BEGIN "
        "SELECT RAISE(ABORT, 'discrepancies are never deleted'); END"
    )


def unprotect_lifecycle() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS discrepancies_lifecycle ON discrepancies")
        op.execute("DROP TRIGGER IF EXISTS discrepancies_no_truncate ON discrepancies")
        op.execute("DROP FUNCTION IF EXISTS inventory_discrepancy_lifecycle()")
        return
    for name in ("fixed_columns", "lifecycle", "no_delete"):
        op.execute(f"DROP TRIGGER IF EXISTS discrepancies_{name}")


def check_values(table: str, column: str, values: tuple[str, ...]) -> None:
    """`column IN values` on `table`: a CHECK constraint on PostgreSQL; on SQLite (where adding
    one means rebuilding a table other tables point at) triggers on insert and update."""
    listed = ", ".join(f"'{value}'" for value in values)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS ck_{table}_{column}")
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT ck_{table}_{column} CHECK ({column} IN ({listed}))"
        )
        return
    allowed = listed.replace("'", "")
    for verb in ("INSERT", "UPDATE"):
        op.execute(f"DROP TRIGGER IF EXISTS {table}_{column}_check_{verb.lower()}")
        op.execute(
            f"CREATE TRIGGER {table}_{column}_check_{verb.lower()} BEFORE {verb} ON {table} "
            f"WHEN NEW.{column} NOT IN ({listed}) BEGIN "
            f"SELECT RAISE(ABORT, '{table}.{column} must be one of {allowed}'); END"
        )


def grant_app_role_on(privileges: dict[str, str]) -> None:
    """Give the application role exactly `privileges` ({table: "SELECT, INSERT"}) on tables a
    migration makes, leaving every other table's privileges as earlier migrations set them
    (PostgreSQL; a no-op on SQLite and where the role has not been created)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    role = app_role()
    grants = "".join(f"GRANT {verbs} ON {table} TO {role}; " for table, verbs in privileges.items())
    op.execute(
        f"""DO $$ BEGIN
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
            {grants}
            GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role};
        END IF;
        END $$"""
    )
