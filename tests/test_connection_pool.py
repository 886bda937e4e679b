"""The connection pool on PostgreSQL: a connection that sat idle is pinged before use and replaced
if the server closed it; one returned moments ago is handed out without a ping."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine, event, text

from inventory.db import engine as engine_module
from inventory.db.engine import make_engine

from .conftest import PG_URL

pytestmark = pytest.mark.skipif(PG_URL is None, reason="the pool's ping is PostgreSQL's")


def backend_pid(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(text("SELECT pg_backend_pid()")))


def count_pings(engine: Any) -> list[str]:
    statements: list[str] = []

    @event.listens_for(engine.pool, "checkout")
    def seen(*_: Any) -> None:
        statements.append("checkout")

    original = engine.dialect.do_ping

    def ping(dbapi_connection: Any) -> bool:
        statements.append("ping")
        return bool(original(dbapi_connection))

    engine.dialect.do_ping = ping
    return statements


def test_a_connection_back_from_use_moments_ago_is_not_pinged() -> None:
    assert PG_URL is not None
    engine = make_engine(PG_URL, pool_size=1, max_overflow=0)
    try:
        backend_pid(engine)  # connects
        seen = count_pings(engine)
        for _ in range(5):
            backend_pid(engine)
        assert seen == ["checkout"] * 5
    finally:
        engine.dispose()


def test_an_idle_connection_the_server_closed_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    assert PG_URL is not None
    engine = make_engine(PG_URL, pool_size=1, max_overflow=0)
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        first = backend_pid(engine)
        with admin.connect() as conn:  # as a server restart or a firewall would
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_S", -1.0)  # everything counts as idle
        seen = count_pings(engine)
        second = backend_pid(engine)  # no error: the ping failed and a new connection was made
        assert second != first
        assert "ping" in seen
    finally:
        engine.dispose()
        admin.dispose()
