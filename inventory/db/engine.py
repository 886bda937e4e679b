"""Engines and sessions. SQLite gets real transactions: the driver's own BEGIN handling is switched
off and we emit BEGIN ourselves (SQLAlchemy's documented recipe), IMMEDIATE for writes so concurrent
writers queue on the busy timeout instead of failing with "database is locked"."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import Executable

WRITE = "inventory_write"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# A pooled PostgreSQL connection idle for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_S = 1.0


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs
        )
        _make_sqlite_transactional(engine)
        # Batch plain executemany INSERTs into multi-row statements (measured: a 10,000-line
        # receipt 3.1 s -> 2.0 s). PostgreSQL bulk inserts use COPY instead (db/bulk.py).
        engine.dialect.use_insertmanyvalues_wo_returning = True
        return engine
    engine = create_engine(url, **kwargs)
    _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: Engine) -> None:
    """Ping a connection before use only if it sat idle in the pool: a server restart or a
    firewall may have closed it meanwhile. One returned moments ago (under load, every one) is
    used as it is; `pool_pre_ping` pinged on every checkout, a round trip each, two per API
    request. A failed ping discards the connection and the pool hands out another."""

    @event.listens_for(engine, "connect")
    def connected(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def returned(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since", 0.0)
        if time.monotonic() - idle_since <= PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise exc.DisconnectionError(str(error)) from error


def _make_sqlite_transactional(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


def begin_write(session: Session) -> None:
    """Start the session's transaction as a write: BEGIN IMMEDIATE on SQLite, nothing special on
    PostgreSQL (row locks do the work there)."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection()
        return
    session.connection(execution_options={WRITE: True})


def psycopg_of(session: Session) -> psycopg.Connection[Any]:
    """The psycopg connection under the session's transaction (PostgreSQL only)."""
    driver = session.connection().connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    return driver


def commit_with(session: Session, sql: str, parameters: dict[str, Any]) -> tuple[Any, ...]:
    """Run `sql` (a statement in the driver's own form that returns one row) and COMMIT in one
    round trip; the row. Then end the session's transaction, which has nothing left to commit.
    PostgreSQL only. A failure comes as SQLAlchemy's DBAPIError, as from `session.execute`,
    and leaves the transaction (aborted, never committed) for the caller to roll back.

    The two go as one simple-protocol query with the parameters bound client-side (psycopg's
    ClientCursor): the server stops at the first error, so the COMMIT runs only if the
    statement succeeded. (psycopg's pipeline mode does the same in one round trip, but its
    client polled the socket in a loop while it waited, costing more CPU than it saved.)"""
    driver = psycopg_of(session)
    try:
        with psycopg.ClientCursor(driver) as cursor:
            cursor.execute(sql + ";\nCOMMIT", parameters)
            row = cursor.fetchone()
    except psycopg.Error as error:
        raise exc.DBAPIError.instance(sql, parameters, error, psycopg.Error) from error
    assert row is not None
    session.commit()
    return tuple(row)


def rows_of(session: Session, statement: Executable, parameters: dict[str, Any]) -> list[Any]:
    """The rows `statement` (built once, at import) returns with `parameters`, as tuples, in the
    session's transaction. For the statements every movement runs: on PostgreSQL they go to the
    driver's cursor as SQL compiled once, which skips SQLAlchemy's per-execution work (a third
    of each statement's Python time, measured); the column types' bind and result processing
    still apply, events do not fire. Elsewhere, `Connection.execute`."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return [tuple(row) for row in connection.execute(statement, parameters)]
    form = _driver_form(statement, connection.dialect)
    bound = {
        name: _uuid_array(form.binds[name](value) if name in form.binds else value)
        for name, value in parameters.items()
    }
    try:
        with psycopg_of(session).cursor() as cursor:
            cursor.execute(form.sql, bound)
            rows = cursor.fetchall()
    except psycopg.Error as error:
        raise exc.DBAPIError.instance(form.sql, bound, error, psycopg.Error) from error
    if form.results is None:
        return rows
    return [
        tuple(value if f is None else f(value) for f, value in zip(form.results, row, strict=True))
        for row in rows
    ]


def _uuid_array(value: Any) -> Any:
    """A list of UUIDs as the text of a PostgreSQL array (the statements cast it to uuid[]):
    psycopg dumps a list element by element in Python, 9 ms for 1,000 UUIDs against 4 ms for
    this text, parsed by the server included (measured); a movement of 1,000 weapons passes four
    such lists. Any other value as it is."""
    if isinstance(value, list) and value and all(isinstance(v, uuid.UUID) for v in value):
        return "{" + ",".join(map(str, value)) + "}"
    return value


@dataclass(frozen=True)
class _DriverForm:
    sql: str
    binds: dict[str, Callable[[Any], Any]]  # by parameter name, where the type converts
    results: tuple[Callable[[Any], Any] | None, ...] | None  # by column; None: none converts


@functools.cache
def _driver_form(statement: Executable, dialect: Dialect) -> _DriverForm:
    compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    binds = {
        name: processor
        for name, bind in compiled.binds.items()
        if (processor := bind.type.bind_processor(dialect)) is not None
    }
    selected = getattr(statement, "selected_columns", ())  # a text() statement has none
    results = tuple(column.type.result_processor(dialect, None) for column in selected)
    return _DriverForm(str(compiled), binds, results if any(results) else None)


def reuse_plans(session: Session) -> None:
    """Let PostgreSQL plan once the statements this transaction runs that the connection has
    prepared (those it ran five times before, psycopg's default), instead of planning them
    again on every execution. It would re-plan a movement's statements for ever: their
    parameters are arrays of weapon ids, whose generic plan is estimated for a longer array
    than the one-weapon custom plans, so the server never switches to it. Measured on a
    single-weapon issue/return: a third less server CPU for its statements."""
    if session.get_bind().dialect.name == "postgresql":
        psycopg_of(session).execute("SET LOCAL plan_cache_mode = force_generic_plan")


def continue_as_write(session: Session) -> None:
    """Make the request's transaction (opened by the token lookup) its write transaction. On
    PostgreSQL it simply goes on: its reads ran at READ COMMITTED, as the write's will, and a
    second BEGIN and connection checkout would only cost time. On SQLite the read transaction
    ends and BEGIN IMMEDIATE starts the write, so concurrent writers queue instead of failing
    to upgrade their locks."""
    if session.get_bind().dialect.name != "postgresql":
        session.rollback()
    begin_write(session)
