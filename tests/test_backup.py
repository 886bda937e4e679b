"""Backup and restore, as the README describes them: PostgreSQL with `pg_dump -Fc` and
`pg_restore` into a new database, SQLite with the sqlite3 online backup API. The restored copy must
verify: the audit chain walks clean to the same head (and, where signed checkpoints exist, extends
the one taken before the backup), the projection agrees with the ledger, and the app serves it."""

from __future__ import annotations

import importlib
import sqlite3
import subprocess
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from inventory import create_app
from inventory.db.engine import make_engine, make_session_factory
from inventory.domain.actors import operator
from inventory.services import audit_log, projection, tokens
from inventory.services.unit_of_work import Context, run_write

from .conftest import Api, create_database, drop_database, make_settings, unique
from .ledger_helpers import make_world


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def back_up_and_restore(url: str, tmp_path: Path) -> str:
    """Copy the database the documented way; return the copy's URL."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        copy = tmp_path / "restored.sqlite3"
        with sqlite3.connect(parsed.database or "") as source, sqlite3.connect(copy) as target:
            source.backup(target)
        return f"sqlite:///{copy}"
    dump = tmp_path / "inventory.dump"
    subprocess.run(["pg_dump", "-Fc", "-f", str(dump), _libpq(url)], check=True)
    name = f"inventory_restored_{uuid.uuid4().hex[:12]}"
    server = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    server.dispose()
    restored = parsed.set(database=name).render_as_string(hide_password=False)
    subprocess.run(
        ["pg_restore", "--no-owner", "--exit-on-error", "-d", _libpq(restored), str(dump)],
        check=True,
    )
    return restored


def _checkpoint_before_backup(url: str, settings: Any) -> Any:
    """A signed checkpoint of the head, if this build makes them (None if not)."""
    try:
        checkpoints = importlib.import_module("inventory.services.checkpoints")
    except ImportError:
        return None
    if not hasattr(checkpoints, "make_checkpoint"):
        return None
    engine = make_engine(url)
    session = make_session_factory(engine)()
    try:
        context = Context(actor=operator("backup"), settings=settings)
        return run_write(session, context, checkpoints.make_checkpoint, lambda c, _: c).body
    finally:
        session.close()
        engine.dispose()


def test_a_restored_backup_verifies(backend: str, tmp_path: Path) -> None:
    url = create_database(backend, tmp_path)
    settings = make_settings(url, tmp_path)
    app = create_app({"SETTINGS": settings})
    restored = None
    try:
        session = app.extensions["inventory.sessions"]()
        admin = run_write(
            session,
            Context(actor=operator("tests"), settings=settings),
            lambda uow: tokens.create_token(uow, "admin", "admin", []),
            lambda issued, _uow: issued.secret,
        ).body
        session.close()
        world = make_world(Api(app.test_client(), admin))
        serial = unique("BAK")
        assert world.receive([serial], {unique("LOT"): 500}).status_code == 201
        assert world.issue([serial]).status_code == 201
        kept = _checkpoint_before_backup(url, settings)

        originals = app.extensions["inventory.sessions"]()
        head = audit_log.head(originals)
        originals.close()
        restored = back_up_and_restore(url, tmp_path)

        engine = make_engine(restored)
        copy = make_session_factory(engine)()
        try:
            assert audit_log.head(copy) == head
            verdict = audit_log.verify(copy)
            assert verdict.ok, verdict
            if kept is not None:
                checkpoints = importlib.import_module("inventory.services.checkpoints")
                verdict = checkpoints.verify(copy, settings, kept=kept)
                assert verdict.ok, verdict
            assert projection.check(copy) == []
        finally:
            copy.close()
            engine.dispose()
        served = create_app({"SETTINGS": make_settings(restored, tmp_path)})
        weapon = Api(served.test_client(), admin).get(
            "/api/v1/weapons", query_string={"serial": serial}
        )
        assert weapon.get_json()["items"][0]["holder"] == f"unit:{world.unit}"
        served.extensions["inventory.engine"].dispose()
    finally:
        app.extensions["inventory.engine"].dispose()
        drop_database(url)
        if restored:
            drop_database(restored)
