"""Heavy reads on a streaming replica (INVENTORY_READ_DATABASE_URL), against real PostgreSQL.

The test builds its own pair of clusters on free ports (initdb a primary, `pg_basebackup -R` a hot
standby of it) rather than replicating the shared server: that server's pg_hba.conf allows no
replication connections, and a test must not change the machine's configuration. Both clusters
and their directories are removed at the end, whatever happened.

Run: INVENTORY_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres \
    .venv/bin/pytest -q tests/test_read_replica.py"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, create_engine, event, text

from inventory import create_app
from inventory.api.context import db_session, read_session
from inventory.db import migrate
from inventory.domain.actors import operator
from inventory.services import tokens
from inventory.services.unit_of_work import Context, run_write
from inventory.settings import Settings

from .conftest import PG_URL, Api, make_settings, unique
from .ledger_helpers import make_world

STEP_TIMEOUT = 120  # seconds for any one initdb / pg_ctl / pg_basebackup


def _bin_dir() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4])
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


BIN = _bin_dir()

if not PG_URL:
    needs_replica = pytest.mark.skip(
        reason="a streaming replica needs PostgreSQL: set INVENTORY_TEST_DATABASE_URL"
    )
elif BIN is None and not os.environ.get("CI"):
    needs_replica = pytest.mark.skip(reason="PostgreSQL's server programs are not installed")
else:  # under CI with PostgreSQL there is no skip: missing server programs fail the fixture
    needs_replica = pytest.mark.usefixtures("pair")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Pair:
    root: Path
    primary_port: int
    standby_port: int

    def url(self, port: int, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{port}/{database}"


def _as_postgres() -> list[str]:
    """PostgreSQL refuses to run as root: run its programs as the postgres user then."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _run(*args: str | Path) -> None:
    command = [*_as_postgres(), *(str(a) for a in args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=STEP_TIMEOUT)
    assert done.returncode == 0, f"{command}: {done.stdout}\n{done.stderr}"


def _start(data: Path, port: int, log: Path) -> None:
    options = f"-p {port} -k {data.parent} -c listen_addresses=127.0.0.1"
    _run(BIN / "pg_ctl", "-D", data, "-l", log, "-o", options, "-w", "-t", "60", "start")


def _stop(data: Path) -> None:
    if (data / "postmaster.pid").exists():
        try:
            _run(BIN / "pg_ctl", "-D", data, "-m", "immediate", "-w", "-t", "30", "stop")
        except (AssertionError, subprocess.TimeoutExpired):
            pid = int((data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, 9)


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    assert BIN is not None, "PostgreSQL's server programs (pg_ctl, initdb) are needed under CI"
    root = Path(tempfile.mkdtemp(prefix="stockpile-replica-"))
    if os.geteuid() == 0:
        postgres = pwd.getpwnam("postgres")
        os.chown(root, postgres.pw_uid, postgres.pw_gid)
    primary, standby = root / "primary", root / "standby"
    made = Pair(root, _free_port(), _free_port())
    try:
        # initdb's pg_hba.conf trusts local replication connections with --auth=trust.
        _run(BIN / "initdb", "-D", primary, "-U", "postgres", "--auth=trust", "--no-sync")
        with (primary / "postgresql.conf").open("a") as conf:
            conf.write("wal_level = replica\nmax_wal_senders = 4\nfsync = off\n")
        _start(primary, made.primary_port, root / "primary.log")
        _run(
            BIN / "pg_basebackup",
            "-h", "127.0.0.1", "-p", str(made.primary_port), "-U", "postgres",
            "-D", standby, "-R", "-X", "stream", "--checkpoint=fast", "--no-sync",
        )  # fmt: skip
        _start(standby, made.standby_port, root / "standby.log")
        yield made
    finally:
        _stop(standby)
        _stop(primary)
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Replicated:
    settings: Settings
    app: Flask
    plain: Flask  # the same primary without a replica: the reference for the report
    api: Api
    primary: Engine
    standby: Engine
    statements: dict[str, list[str]]


@pytest.fixture(scope="module")
def replicated(pair: Pair, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicated]:
    server = create_engine(pair.url(pair.primary_port), isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text('CREATE DATABASE "inventory"'))
    server.dispose()
    primary_url = pair.url(pair.primary_port, "inventory")
    standby_url = pair.url(pair.standby_port, "inventory")
    migrate.upgrade(primary_url)
    settings = make_settings(primary_url, tmp_path_factory.mktemp("replica-app"))
    replica_settings = replace(
        settings, read_database_url=standby_url, read_replica_wait=timedelta(seconds=10)
    )
    app, statements = _watched_app(replica_settings)
    plain = create_app({"SETTINGS": settings})
    engines = {
        "primary": app.extensions["inventory.engine"],
        "standby": app.extensions["inventory.read_engine"],
    }
    session = app.extensions["inventory.sessions"]()
    try:
        secret = run_write(
            session,
            Context(actor=operator("tests")),
            lambda uow: tokens.create_token(uow, "replica admin", "admin", []),
            lambda issued, _uow: issued.secret,
        ).body
    finally:
        session.close()
    yield Replicated(
        replica_settings,
        app,
        plain,
        Api(app.test_client(), str(secret)),
        engines["primary"],
        engines["standby"],
        statements,
    )
    for flask_app in (app, plain):
        flask_app.extensions["inventory.engine"].dispose()
    engines["standby"].dispose()


def _watched_app(settings: Settings) -> tuple[Flask, dict[str, list[str]]]:
    """An app whose engines note every statement they send, by server (primary, standby)."""
    app = create_app({"SETTINGS": settings})
    statements: dict[str, list[str]] = {"primary": [], "standby": []}
    for name, key in (("primary", "inventory.engine"), ("standby", "inventory.read_engine")):

        def record(*args: Any, name: str = name) -> None:
            statements[name].append(str(args[2]))

        event.listen(app.extensions[key], "before_cursor_execute", record)
    return app, statements


def _caught_up(primary: Engine, standby: Engine, within: float = 30.0) -> None:
    with primary.connect() as conn:
        lsn = conn.scalar(text("SELECT pg_current_wal_flush_lsn()::text"))
    deadline = time.monotonic() + within
    with standby.connect() as conn:
        query = text("SELECT pg_last_wal_replay_lsn() >= CAST(:lsn AS pg_lsn)")
        while not conn.scalar(query, {"lsn": lsn}):
            assert time.monotonic() < deadline, "the standby did not catch up in time"
            time.sleep(0.02)


def _replay(standby: Engine, paused: bool) -> None:
    with standby.connect() as conn:
        conn.execute(text(f"SELECT pg_wal_replay_{'pause' if paused else 'resume'}()"))
        conn.commit()


@needs_replica
def test_heavy_reads_use_the_standby_and_writes_the_primary(replicated: Replicated) -> None:
    with replicated.app.test_request_context():
        assert read_session().scalar(text("SELECT pg_is_in_recovery()")) is True
        assert db_session().scalar(text("SELECT pg_is_in_recovery()")) is False

    world = make_world(replicated.api)
    assert world.receive([unique("S")]).status_code == 201
    replicated.statements["primary"].clear()
    replicated.statements["standby"].clear()
    response = replicated.api.get("/api/v1/reports/accountability")
    assert response.status_code == 200, response.get_json()
    on_standby = [s for s in replicated.statements["standby"] if "pg_lsn" not in s]
    assert on_standby, "the report ran no query on the standby"
    # The primary saw only the request's own business (the token, the WAL position).
    assert not set(on_standby) & set(replicated.statements["primary"])
    assert any("pg_current_wal_flush_lsn" in s for s in replicated.statements["primary"])


@needs_replica
def test_the_report_from_the_standby_matches_the_primarys(replicated: Replicated) -> None:
    world = make_world(replicated.api)
    serials = [unique("S") for _ in range(5)]
    assert world.receive(serials, lots={unique("L"): 500}).status_code == 201
    assert world.issue(serials[:2]).status_code == 201
    as_of = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    time.sleep(1.2)  # as_of in the past: both reports read the same books
    _caught_up(replicated.primary, replicated.standby)
    query = {"as_of": as_of}
    from_standby = replicated.api.get("/api/v1/reports/accountability", query_string=query)
    reference = Api(replicated.plain.test_client(), replicated.api.token)
    from_primary = reference.get("/api/v1/reports/accountability", query_string=query)
    assert from_standby.status_code == from_primary.status_code == 200
    assert from_standby.get_json() == from_primary.get_json()
    mine = [d for d in from_standby.get_json()["depots"] if d["depot"] == world.depot]
    assert mine[0]["weapons"]["on_books"] == 5
    for path, args in (
        ("/api/v1/reports/accountability", {"format": "csv", **query}),
        ("/api/v1/discrepancies", {"format": "csv"}),
    ):
        standby_csv = replicated.api.get(path, query_string=args)
        assert standby_csv.status_code == 200
        assert standby_csv.data == reference.get(path, query_string=args).data, path


def _on_books(api: Api, depot: str) -> int:
    report = api.get("/api/v1/reports/accountability", query_string={"depot": depot})
    assert report.status_code == 200, report.get_json()
    return int(report.get_json()["depots"][0]["weapons"]["on_books"])


@needs_replica
def test_a_clients_write_is_in_its_next_read_while_the_standby_lags(
    replicated: Replicated,
) -> None:
    world = make_world(replicated.api)
    assert world.receive([unique("S")]).status_code == 201
    _caught_up(replicated.primary, replicated.standby)
    _replay(replicated.standby, paused=True)
    resumer = threading.Timer(0.5, _replay, (replicated.standby, False))
    try:
        assert world.receive([unique("S")]).status_code == 201
        # The standby really lags: read directly, it still has one weapon.
        with replicated.standby.connect() as conn:
            assert not conn.scalar(
                text("SELECT pg_last_wal_replay_lsn() >= CAST(:lsn AS pg_lsn)"),
                {"lsn": _flushed(replicated.primary)},
            )
        # Replay resumes while the read waits for it; the read is then served by the standby.
        resumer.start()
        replicated.statements["standby"].clear()
        assert _on_books(replicated.api, world.depot) == 2
        assert any("pg_lsn" not in s for s in replicated.statements["standby"])
    finally:
        resumer.cancel()
        resumer.join()
        _replay(replicated.standby, paused=False)


@needs_replica
def test_a_standby_that_stays_behind_sends_the_read_to_the_primary(
    replicated: Replicated,
) -> None:
    world = make_world(replicated.api)
    assert world.receive([unique("S")]).status_code == 201
    _caught_up(replicated.primary, replicated.standby)
    _replay(replicated.standby, paused=True)
    impatient, statements = _watched_app(
        replace(replicated.settings, read_replica_wait=timedelta(seconds=0.5))
    )
    try:
        assert world.receive([unique("S")]).status_code == 201
        started = time.monotonic()
        api = Api(impatient.test_client(), replicated.api.token)
        assert _on_books(api, world.depot) == 2
        assert time.monotonic() - started >= 0.5
        assert statements["standby"], "the read did not ask the standby first"
        assert all("pg_lsn" in s for s in statements["standby"])
    finally:
        _replay(replicated.standby, paused=False)
        impatient.extensions["inventory.engine"].dispose()
        impatient.extensions["inventory.read_engine"].dispose()


def _flushed(primary: Engine) -> str:
    with primary.connect() as conn:
        return str(conn.scalar(text("SELECT pg_current_wal_flush_lsn()::text")))


def test_without_a_replica_heavy_reads_use_the_primarys_session(app: Flask) -> None:
    assert app.extensions["inventory.settings"].read_database_url is None
    with app.test_request_context():
        assert read_session() is db_session()


def test_a_replica_needs_a_postgresql_primary(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'inventory.sqlite3'}",
        read_database_url="postgresql+psycopg://postgres@127.0.0.1:1/inventory",
        instance_dir=tmp_path,
    )
    with pytest.raises(ValueError, match="INVENTORY_READ_DATABASE_URL"):
        create_app({"SETTINGS": settings})


def test_the_replica_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVENTORY_READ_DATABASE_URL", "postgresql+psycopg://standby/inventory")
    monkeypatch.setenv("INVENTORY_READ_REPLICA_WAIT", "0.25")
    settings = Settings.from_env()
    assert settings.read_database_url == "postgresql+psycopg://standby/inventory"
    assert settings.read_replica_wait == timedelta(seconds=0.25)
    assert Settings().read_database_url is None
