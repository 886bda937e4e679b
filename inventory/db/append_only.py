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
