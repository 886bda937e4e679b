"""What the hot path's shortcuts must not change: a movement request uses one connection from
the token lookup to the commit, a revoked token is refused on the very next request, on
PostgreSQL a failure of the audit append that goes with the COMMIT leaves nothing written,
holders resolved without ORM loading are the session's own, and a movement's plan reuse ends
with its transaction."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, event, func, select, text

from inventory.clock import utcnow
from inventory.db.models import AuditRecord
from inventory.domain.actors import operator
from inventory.services import audit_log, holders, ledger

from .conftest import PG_URL, Api, unique
from .ledger_helpers import make_world


def test_a_movement_request_checks_out_one_connection(app: Flask, api: Api) -> None:
    world = make_world(api)
    serial = world.maker[:3] + "-HOT-1"
    assert world.receive([serial]).status_code == 201
    checkouts: list[int] = []
    pool = app.extensions["inventory.engine"].pool

    def count(*_: Any) -> None:
        checkouts.append(1)

    event.listen(pool, "checkout", count)
    try:
        assert world.issue([serial]).status_code == 201
    finally:
        event.remove(pool, "checkout", count)
    assert len(checkouts) == (1 if app.extensions["inventory.engine"].name == "postgresql" else 2)


def test_a_revoked_token_is_refused_on_the_next_request(api: Api) -> None:
    issued = api.post(
        "/api/v1/tokens", json={"name": unique("auditor"), "role": "auditor"}
    ).get_json()
    assert api.get("/api/v1/depots", token=issued["token"]).status_code == 200
    assert api.delete(f"/api/v1/tokens/{issued['id']}").status_code == 200
    assert api.get("/api/v1/depots", token=issued["token"]).status_code == 401


def append_one(session: Any) -> int:
    return audit_log.append_and_commit(
        session,
        actor=operator("tests"),
        request_id="hot-path",
        now=utcnow(),
        action="test.append",
        subject="test:hot-path",
        changes={},
    )


@pytest.mark.skipif(PG_URL is None, reason="the append goes with the COMMIT on PostgreSQL")
def test_an_append_that_fails_with_its_commit_writes_nothing(app: Flask) -> None:
    engine = app.extensions["inventory.engine"]
    if engine.name != "postgresql":
        pytest.skip("this backend appends and commits separately")
    holder = create_engine(engine.url)
    session = app.extensions["inventory.sessions"]()
    try:
        before = session.scalar(select(func.max(AuditRecord.seq)))
        session.rollback()
        with holder.connect() as other:
            other.execute(text("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE"))
            session.execute(text("SET LOCAL lock_timeout = '100ms'"))
            with pytest.raises(Exception) as raised:
                append_one(session)
            assert "lock" in str(raised.value)
            session.rollback()
            other.rollback()
        assert session.scalar(select(func.max(AuditRecord.seq))) == before
        session.rollback()
        seq = append_one(session)
        assert seq == (before or 0) + 1
        audit_log.read_snapshot(session)
        assert audit_log.verify(session).ok
    finally:
        session.close()
        holder.dispose()


def test_holders_resolve_as_the_sessions_own_with_their_home_depot(app: Flask, api: Api) -> None:
    world = make_world(api)
    session = app.extensions["inventory.sessions"]()
    try:
        # The unit alone: its home depot is not in the session, so it loads when asked for.
        unit = holders.resolve_many(session, {"from": f"unit:{world.unit}"})["from"]
        assert unit in session and unit.home_depot is not None
        assert unit.home_depot.ref == f"depot:{world.depot}"
        session.rollback()
        session.expunge_all()
        # Both, as a movement names them: the unit's home depot is the session's depot.
        found = holders.resolve_many(
            session, {"from": f"depot:{world.depot}", "to": f"unit:{world.unit}"}
        )
        assert found["to"].home_depot is found["from"]
        # Asked again in the same session: the same instances, nothing made twice.
        again = holders.resolve_many(session, {"to": f"depot:{world.depot}"})
        assert again["to"] is found["from"]
        assert not session.dirty and not session.new
    finally:
        session.close()


@pytest.mark.skipif(PG_URL is None, reason="plan reuse is PostgreSQL's")
def test_a_movement_reuses_plans_only_within_its_own_transaction(
    app: Flask, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = app.extensions["inventory.engine"]
    if engine.name != "postgresql":
        pytest.skip("plan reuse is PostgreSQL's")
    world = make_world(api)
    serial = world.maker[:3] + "-PLAN-1"
    assert world.receive([serial]).status_code == 201
    seen: list[tuple[Any, str]] = []
    post = ledger._post_weapon_moves

    def spy(session: Any, *args: Any) -> int:
        driver = session.connection().connection.driver_connection
        seen.append((driver, driver.execute("SHOW plan_cache_mode").fetchone()[0]))
        return post(session, *args)

    monkeypatch.setattr(ledger, "_post_weapon_moves", spy)
    assert world.issue([serial]).status_code == 201
    [(driver, during)] = seen
    assert during == "force_generic_plan"
    # The same connection, idle in the pool after the commit, is back to the server's default.
    assert driver.execute("SHOW plan_cache_mode").fetchone()[0] == "auto"
    driver.rollback()
