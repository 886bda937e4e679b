"""The sweep, on both databases, with a moved clock: it opens each overdue kind once the due
date passes, and running it again opens nothing new. It runs on its own database: moving the
clock months ahead would otherwise open discrepancies for every other test's stock."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from inventory import create_app
from inventory.cli import main
from inventory.db.models import AuditRecord, Discrepancy, EndUseVerification
from inventory.domain.actors import operator
from inventory.services import sweep, tokens
from inventory.services.sweep import SweepResult
from inventory.services.unit_of_work import Context, run_write
from inventory.settings import Settings

from .conftest import Api, create_database, drop_database, make_settings, unique
from .ledger_helpers import World, ago, make_world
from .test_foundation import assert_problem


@pytest.fixture(scope="module")
def sweep_app(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    url = create_database(backend, tmp_path_factory.mktemp("sweep"))
    flask_app = create_app({"SETTINGS": make_settings(url, tmp_path_factory.mktemp("sweep-app"))})
    yield flask_app
    flask_app.extensions["inventory.engine"].dispose()
    drop_database(url)


@pytest.fixture
def session(sweep_app: Flask) -> Iterator[Session]:
    db: Session = sweep_app.extensions["inventory.sessions"]()
    try:
        yield db
    finally:
        db.close()


@pytest.fixture
def world(sweep_app: Flask, session: Session) -> World:
    secret = run_write(
        session,
        Context(actor=operator("tests")),
        lambda uow: tokens.create_token(uow, unique("sweep admin"), "admin", []),
        lambda issued, _uow: issued.secret,
    ).body
    return make_world(Api(sweep_app.test_client(), str(secret)))


def run_sweep(session: Session, now: datetime, settings: Settings | None = None) -> SweepResult:
    context = Context(actor=operator("tests"), settings=settings or Settings())
    result: SweepResult = run_write(
        session, context, lambda uow: sweep.run_sweep(uow, now), lambda r, _uow: r
    ).body
    return result


def opened_for(session: Session, result: SweepResult) -> list[Discrepancy]:
    session.rollback()
    return list(
        session.scalars(select(Discrepancy).where(Discrepancy.id.in_(result.discrepancies)))
    )


def dispatch(world: World, serial: str, expected_by: datetime) -> dict[str, Any]:
    response = world.api.post(
        "/api/v1/transfers",
        json={
            "from": f"depot:{world.depot}",
            "to": f"depot:{world.other_depot}",
            "expected_by": expected_by.isoformat(),
            "document_ref": unique("TRF"),
            "lines": [{"serial": serial}],
        },
    )
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def test_moving_the_clock_past_due_dates_opens_each_overdue_kind_once(
    world: World, session: Session
) -> None:
    start = datetime.now(UTC)
    in_store, issued, shipped = unique("AK"), [unique("AK"), unique("AK")], unique("AK")
    assert world.receive([in_store, shipped, *issued]).status_code == 201
    due = start + timedelta(days=1)
    assert world.issue(issued, due_back_at=due.isoformat()).status_code == 201
    transfer = dispatch(world, shipped, start + timedelta(days=2))
    verification = EndUseVerification(
        id=uuid.uuid4(),
        transfer_id=uuid.UUID(transfer["id"]),
        number=1,
        due_at=start + timedelta(days=10),
    )
    session.add(verification)
    session.commit()

    assert run_sweep(session, start).total == 0  # nothing is due yet

    first = run_sweep(session, start + timedelta(days=3))
    assert first.opened["return_overdue"] == 2 and first.opened["transit_overdue"] == 1
    assert first.opened["end_use_verification_overdue"] == 0
    opened = opened_for(session, first)
    weapons = {d.weapon_id for d in opened if d.kind == "return_overdue"}
    assert len(weapons) == 2 and all(d.depot and d.depot.code == world.depot for d in opened)
    transit = next(d for d in opened if d.kind == "transit_overdue")
    assert str(transit.transfer_id) == transfer["id"] and transit.severity == "high"
    assert run_sweep(session, start + timedelta(days=3)).total == 0  # idempotent

    later = run_sweep(session, start + timedelta(days=11))
    assert later.opened == {
        "transit_overdue": 0,
        "return_overdue": 0,
        "verification_overdue": 0,
        "end_use_verification_overdue": 1,
    }
    assert opened_for(session, later)[0].verification_id == verification.id

    months = run_sweep(session, start + timedelta(days=91))
    assert months.opened["verification_overdue"] == 1  # one per depot, counting its weapons
    overdue = opened_for(session, months)[0]
    assert overdue.depot and overdue.depot.code == world.depot and overdue.quantity == 1
    assert "1 weapons in depot" in overdue.summary
    assert run_sweep(session, start + timedelta(days=91)).total == 0


def test_a_stocktake_counts_as_physical_verification(world: World, session: Session) -> None:
    counted, uncounted = unique("AK"), unique("AK")
    world.receive([counted, uncounted])
    between = datetime.now(UTC)  # after the receipt, before the stocktake
    stocktake = world.api.post("/api/v1/stocktakes", json={"depot": world.depot}).get_json()
    world.api.post(
        f"/api/v1/stocktakes/{stocktake['id']}/counts", json={"lines": [{"serial": counted}]}
    )
    assert world.api.post(f"/api/v1/stocktakes/{stocktake['id']}/close").status_code == 200

    # With a zero-length policy, a weapon is overdue unless verified at or after `between`.
    strict = Settings(verification_period=timedelta(0))
    result = run_sweep(session, between, strict)
    mine = [d for d in opened_for(session, result) if d.depot and d.depot.code == world.depot]
    assert [(d.kind, d.quantity) for d in mine] == [("verification_overdue", 1)]


def test_the_sweep_is_recorded_and_offered_to_admins_only(world: World, session: Session) -> None:
    serial = unique("AK")
    world.receive([serial], occurred_at=ago(days=3))
    world.issue([serial], occurred_at=ago(days=2), due_back_at=ago(days=1))
    clerk = world.api.token_for("clerk", [world.depot])
    assert_problem(world.api.post("/api/v1/sweep", token=clerk), 403)

    def sweep_records() -> int:
        session.rollback()
        query = select(AuditRecord).where(AuditRecord.action == "sweep.run")
        return len(session.scalars(query).all())

    before = sweep_records()
    response = world.api.post("/api/v1/sweep")
    assert response.status_code == 200, response.get_json()
    assert set(response.get_json()["opened"]) == {
        "transit_overdue",
        "return_overdue",
        "verification_overdue",
        "end_use_verification_overdue",
    }
    assert response.get_json()["opened"]["return_overdue"] >= 1
    assert sweep_records() == before + 1
    again = world.api.post("/api/v1/sweep")
    assert again.status_code == 200 and sum(again.get_json()["opened"].values()) == 0
    assert sweep_records() == before + 1  # a sweep that finds nothing changes nothing


def test_the_cli_sweeps_as_of_a_given_time(
    world: World, sweep_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = unique("AK")
    world.receive([serial])
    world.issue([serial], due_back_at=ago(days=-1))
    url = sweep_app.extensions["inventory.settings"].database_url
    monkeypatch.setenv("INVENTORY_DATABASE_URL", url)
    later = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    runner = CliRunner()
    first = runner.invoke(main, ["sweep", "--now", later])
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["opened"]["return_overdue"] >= 1
    again = runner.invoke(main, ["sweep", "--now", later])
    assert json.loads(again.output)["total"] == 0
    naive = runner.invoke(main, ["sweep", "--now", "2030-01-01T00:00"])
    assert naive.exit_code != 0 and "offset" in naive.output
