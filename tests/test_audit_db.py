"""The audit log at the database: append-only triggers on both databases, the PostgreSQL
application role's missing privileges, and concurrent writers leaving a chain that verifies."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError

from inventory.db.append_only import app_role
from inventory.services import audit_log, checkpoints, reference

from .conftest import PG_URL, create_database, drop_database, unique
from .test_audit_tamper import Log

WRITERS, DEPOTS_EACH, CHECKPOINTERS, CHECKPOINTS_EACH = 8, 15, 2, 3


def triggers(engine: Engine, table: str) -> set[str]:
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            query = (
                "SELECT tgname FROM pg_trigger "
                "WHERE tgrelid = CAST(:t AS regclass) AND NOT tgisinternal"
            )
        else:
            query = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"
        return {name for (name,) in conn.execute(text(query), {"t": table})}


def refusal(engine: Engine, statement: str, *, role: str | None = None) -> str:
    """The error `statement` fails with (in a transaction that is rolled back either way)."""
    with engine.connect() as conn:
        if role is not None:
            conn.execute(text(f"SET LOCAL ROLE {role}"))
        try:
            conn.execute(text(statement))
        except DBAPIError as error:
            return str(error.orig)
        finally:
            conn.rollback()
    raise AssertionError(f"{statement!r} was allowed")


def test_append_only_triggers_exist_after_upgrade_head(
    fresh_database_url: str, tmp_path: Path
) -> None:
    engine = create_engine(fresh_database_url)
    try:
        postgres = engine.dialect.name == "postgresql"
        for table in ("audit_records", "audit_checkpoints"):
            expected = (
                {f"{table}_append_only", f"{table}_no_truncate"}
                if postgres
                else {f"{table}_no_update", f"{table}_no_delete"}
            )
            assert expected <= triggers(engine, table)
        log = Log(fresh_database_url, tmp_path)
        log.depots(1)
        log.engine.dispose()
        # Even the tables' owner is refused while the triggers are in place.
        for statement in (
            "UPDATE audit_records SET actor = 'mallory'",
            "DELETE FROM audit_records",
            *(["TRUNCATE audit_records"] if postgres else []),
        ):
            assert "append-only" in refusal(engine, statement)
    finally:
        engine.dispose()


@pytest.fixture
def database_with_app_role(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database migrated after the application role exists, so the migration's grants apply."""
    if backend != "postgresql":
        pytest.skip("roles and privileges are PostgreSQL's")
    assert PG_URL
    server = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:  # roles belong to the server, not to one database
        conn.execute(
            text(
                f"DO $$ BEGIN CREATE ROLE {app_role()} NOLOGIN; "
                "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
            )
        )
    server.dispose()
    url = create_database(backend, tmp_path)
    yield url
    drop_database(url)


def test_the_app_role_cannot_change_or_unprotect_the_audit_log(
    database_with_app_role: str, tmp_path: Path
) -> None:
    role = app_role()
    engine = create_engine(database_with_app_role)
    try:
        with engine.connect() as conn:
            owners = conn.execute(
                text(
                    "SELECT tablename, tableowner FROM pg_tables "
                    "WHERE tablename IN ('audit_records', 'audit_checkpoints')"
                )
            ).all()
        assert len(owners) == 2 and all(owner != role for _table, owner in owners)
        for table in ("audit_records", "audit_checkpoints"):
            for statement in (
                f"UPDATE {table} SET seq = seq",
                f"DELETE FROM {table}",
                f"TRUNCATE {table}",
            ):
                refused = refusal(engine, statement, role=role)
                assert f"permission denied for table {table}" in refused, statement
            assert "must be owner" in refusal(
                engine, f"ALTER TABLE {table} DISABLE TRIGGER USER", role=role
            )
        assert "permission denied" in refusal(
            engine, "SET session_replication_role = replica", role=role
        )
        # The chain head: moved forward by every write, never removed or duplicated.
        for statement in (
            "DELETE FROM audit_head",
            "TRUNCATE audit_head",
            "INSERT INTO audit_head (id, seq, hash) VALUES (2, 0, '')",
        ):
            refused = refusal(engine, statement, role=role)
            assert "permission denied for table audit_head" in refused, statement
    finally:
        engine.dispose()

    # Everything the app does to the log, it can still do as that role.
    as_app = Log(database_with_app_role, tmp_path)
    event.listen(
        as_app.engine, "begin", lambda conn: conn.exec_driver_sql(f"SET LOCAL ROLE {role}")
    )
    try:
        as_app.depots(2)
        made = as_app.checkpoint()
        as_app.depots(1)
        assert made.seq == 2 and as_app.verify().ok
    finally:
        as_app.engine.dispose()


def test_concurrent_writers_leave_a_chain_that_verifies(
    fresh_database_url: str, tmp_path: Path
) -> None:
    log = Log(fresh_database_url, tmp_path)
    errors: list[BaseException] = []
    verdicts: list[Any] = []
    writing = threading.Event()

    def guarded(work: Any) -> Any:
        def run() -> None:
            try:
                work()
            except BaseException as error:  # reported by the main thread below
                errors.append(error)

        return run

    def write_depots() -> None:
        for _ in range(DEPOTS_EACH):
            code = unique("C")
            log.write(functools.partial(reference.create_depot, code=code, name=code))

    def make_checkpoints() -> None:
        for _ in range(CHECKPOINTS_EACH):
            log.checkpoint()

    def verify_while_writing() -> None:
        while writing.is_set():
            verdicts.append(log.verify())

    log.depots(1)  # something to checkpoint from the start
    writing.set()
    verifier = threading.Thread(target=guarded(verify_while_writing))
    verifier.start()
    workers = [threading.Thread(target=guarded(write_depots)) for _ in range(WRITERS)]
    workers += [threading.Thread(target=guarded(make_checkpoints)) for _ in range(CHECKPOINTERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    writing.clear()
    verifier.join()
    try:
        assert not errors, errors
        assert verdicts and all(v.ok for v in verdicts), [v for v in verdicts if not v.ok]
        final = log.verify()
        made = CHECKPOINTERS * CHECKPOINTS_EACH
        assert final.ok and final.length == 1 + WRITERS * DEPOTS_EACH + made
        session = log.sessions()
        try:
            assert len(checkpoints.stored(session)) == made
            assert audit_log.head(session) == (final.head_seq, final.head_hash)
        finally:
            session.close()
    finally:
        log.engine.dispose()
