"""Two-phase transfers over HTTP, on both databases: dispatch into transit, one receipt with its
shortfall and surplus, cancellation, scope, and overdue listing with a moved clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from inventory.db.engine import make_engine, make_session_factory
from inventory.db.models import Discrepancy, OutboxEvent, Transfer
from inventory.domain.actors import Actor, Role
from inventory.services import projection, transfers

from .conftest import Api, unique
from .ledger_helpers import World, ago, make_world
from .test_foundation import assert_problem


@pytest.fixture
def world(api: Api) -> World:
    return make_world(api)


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    engine = make_engine(database_url)
    db = make_session_factory(engine)()
    try:
        yield db
    finally:
        db.close()
        engine.dispose()


def later(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


def dispatch(world: World, lines: list[dict[str, Any]], **extra: Any) -> Any:
    body = {
        "from": f"depot:{world.depot}",
        "to": f"depot:{world.other_depot}",
        "expected_by": later(days=3),
        "document_ref": unique("TRF"),
        "lines": lines,
        **extra,
    }
    token = body.pop("token", None)
    return world.api.post("/api/v1/transfers", json=body, token=token)


def receive(world: World, transfer_id: str, lines: list[dict[str, Any]], **extra: Any) -> Any:
    body = {"received_at": datetime.now(UTC).isoformat(), "lines": lines, **extra}
    token = body.pop("token", None)
    return world.api.post(f"/api/v1/transfers/{transfer_id}/receipt", json=body, token=token)


def holdings(world: World, holder: str) -> dict[str, Any]:
    response = world.api.get("/api/v1/holdings", query_string={"holder": holder})
    assert response.status_code == 200, response.get_json()
    return dict(response.get_json())


def variances(session: Session, transfer_id: str, kind: str) -> list[Discrepancy]:
    session.rollback()  # see what the requests committed
    return list(
        session.scalars(
            select(Discrepancy)
            .join(Transfer, Transfer.id == Discrepancy.transfer_id)
            .where(Discrepancy.kind == kind)
            .where(Transfer.document_ref.is_not(None))
            .where(Discrepancy.transfer_id == _uuid(transfer_id))
            .order_by(Discrepancy.seq)
        )
    )


def _uuid(value: str) -> Any:
    import uuid

    return uuid.UUID(value)


def test_a_short_receipt_leaves_exactly_the_missing_items_in_transit(
    world: World, session: Session
) -> None:
    batch = unique("AK")
    serials = [f"{batch}-{i:03d}" for i in range(500)]
    lots = {unique("LOT"): 1_000 for _ in range(3)}
    assert world.receive(serials, lots).status_code == 201
    manifest = [{"serial": s} for s in serials] + [
        {"lot_number": n, "quantity": q} for n, q in lots.items()
    ]
    response = dispatch(world, manifest)
    assert response.status_code == 201, response.get_json()
    transfer = response.get_json()
    assert transfer["status"] == "in_transit" and len(transfer["lines"]) == 503
    assert (
        transfer["from"] == f"depot:{world.depot}"
        and transfer["to"] == f"depot:{world.other_depot}"
    )
    transit = transfer["transit"]
    assert transit.startswith("transit:TR-")
    assert len(holdings(world, transit)["weapons"]) == 500
    assert holdings(world, f"depot:{world.depot}")["weapons"] == []
    assert world.weapon(serials[0])["status"] == "in_transit"

    missing, (short_lot, *full_lots) = serials[:2], list(lots)
    arrived = [{"serial": s} for s in serials[2:]]
    arrived += [{"lot_number": short_lot, "quantity": 900}]
    arrived += [{"lot_number": n, "quantity": 1_000} for n in full_lots]
    clerk = world.api.token_for("clerk", [world.other_depot])
    response = receive(world, transfer["id"], arrived, token=clerk)
    assert response.status_code == 201, response.get_json()
    received = response.get_json()
    assert received["status"] == "received_with_discrepancy" and received["surplus"] == []
    assert sorted(item["serial"] for item in received["shortfall"] if item["serial"]) == missing
    lot_items = [item for item in received["shortfall"] if item["lot_id"]]
    assert [(i["lot_number"], i["quantity"]) for i in lot_items] == [(short_lot, 100)]
    assert all(item["discrepancy_id"] for item in received["shortfall"])

    in_transit = holdings(world, transit)
    assert sorted(w["serial"] for w in in_transit["weapons"]) == missing
    assert [(lq["lot_number"], lq["quantity"]) for lq in in_transit["lots"]] == [(short_lot, 100)]
    destination = holdings(world, f"depot:{world.other_depot}")
    assert len(destination["weapons"]) == 498
    assert sorted(lq["quantity"] for lq in destination["lots"]) == [900, 1_000, 1_000]

    shortfalls = variances(session, transfer["id"], "receipt_shortfall")
    assert len(shortfalls) == 3
    assert sum(1 for d in shortfalls if d.weapon_id) == 2
    assert [d.quantity for d in shortfalls if d.lot_id] == [100]
    # Stock in transit answers to the origin, so the shortfall is the origin depot's.
    assert {d.depot.code for d in shortfalls if d.depot} == {world.depot}
    assert all(d.severity == "critical" and d.status == "open" for d in shortfalls)
    assert projection.check(session) == []
    assert session.scalar(
        select(OutboxEvent.id).where(
            OutboxEvent.type == "transfer.received", OutboxEvent.depot == world.other_depot
        )
    )

    body = assert_problem(world.api.post(f"/api/v1/transfers/{transfer['id']}/cancel"), 409)
    assert transfer["id"] in body["detail"]
    again = assert_problem(receive(world, transfer["id"], [], token=clerk), 409)
    assert "received_with_discrepancy" in again["detail"]
    shown = world.api.get(f"/api/v1/transfers/{transfer['id']}").get_json()
    assert len(shown["shortfall"]) == 3 and len(shown["received"]) == 501


def test_only_the_destination_clerk_receives(world: World) -> None:
    serial = unique("AK")
    world.receive([serial])
    transfer = dispatch(world, [{"serial": serial}]).get_json()
    third = unique("D")
    assert world.api.post("/api/v1/depots", json={"code": third, "name": third}).status_code == 201
    outsider = world.api.token_for("clerk", [third])
    # A clerk of neither end is told what a transfer they cannot read would tell them: nothing.
    body = assert_problem(receive(world, transfer["id"], [{"serial": serial}], token=outsider), 404)
    assert world.other_depot not in body["detail"]
    origin_clerk = world.api.token_for("clerk", [world.depot])
    assert_problem(receive(world, transfer["id"], [{"serial": serial}], token=origin_clerk), 403)
    monitor = world.api.token_for("monitor")
    assert_problem(receive(world, transfer["id"], [{"serial": serial}], token=monitor), 403)
    # Nothing about the transfer leaks to the third depot's clerk.
    assert_problem(world.api.get(f"/api/v1/transfers/{transfer['id']}", token=outsider), 404)
    listed = world.api.get("/api/v1/transfers", token=outsider, query_string={"limit": 1000})
    assert transfer["id"] not in {t["id"] for t in listed.get_json()["items"]}
    mine = world.api.get("/api/v1/transfers", token=origin_clerk, query_string={"limit": 1000})
    assert transfer["id"] in {t["id"] for t in mine.get_json()["items"]}
    assert world.weapon(serial)["status"] == "in_transit"


def test_only_the_origin_clerk_dispatches(world: World) -> None:
    serial = unique("AK")
    world.receive([serial])
    outsider = world.api.token_for("clerk", [world.other_depot])
    body = assert_problem(dispatch(world, [{"serial": serial}], token=outsider), 403)
    assert world.depot in body["detail"]
    insider = world.api.token_for("clerk", [world.depot])
    assert dispatch(world, [{"serial": serial}], token=insider).status_code == 201
    held = assert_problem(dispatch(world, [{"serial": serial}]), 409)
    assert serial in held["detail"] and "transit:TR-" in held["detail"]


def test_a_surplus_serial_is_not_taken_into_stock(world: World, session: Session) -> None:
    shipped, stayed, stranger = unique("AK"), unique("AK"), unique("GHOST")
    world.receive([shipped, stayed])
    transfer = dispatch(world, [{"serial": shipped}]).get_json()
    response = receive(
        world, transfer["id"], [{"serial": shipped}, {"serial": stayed}, {"serial": stranger}]
    )
    assert response.status_code == 201, response.get_json()
    received = response.get_json()
    assert received["status"] == "received_with_discrepancy" and received["shortfall"] == []
    assert sorted(item["serial"] for item in received["surplus"]) == sorted([stayed, stranger])
    assert [i["weapon_id"] is None for i in received["surplus"] if i["serial"] == stranger] == [
        True
    ]
    assert world.weapon(shipped)["holder"] == f"depot:{world.other_depot}"
    assert world.weapon(stayed)["holder"] == f"depot:{world.depot}"
    assert (
        world.api.get("/api/v1/weapons", query_string={"serial": stranger}).get_json()["items"]
        == []
    )
    surplus = variances(session, transfer["id"], "receipt_surplus")
    assert len(surplus) == 2 and {d.severity for d in surplus} == {"high"}
    assert {d.depot.code for d in surplus if d.depot} == {world.other_depot}
    assert any(stranger in d.summary for d in surplus)


def test_a_full_receipt_is_received_and_lots_over_the_manifest_are_surplus(world: World) -> None:
    serial, lot = unique("AK"), unique("LOT")
    world.receive([serial], {lot: 500})
    transfer = dispatch(world, [{"serial": serial}, {"lot_number": lot, "quantity": 200}])
    transfer_id = transfer.get_json()["id"]
    over = receive(world, transfer_id, [{"serial": serial}, {"lot_number": lot, "quantity": 250}])
    assert over.status_code == 201, over.get_json()
    body = over.get_json()
    assert [(i["lot_number"], i["quantity"]) for i in body["surplus"]] == [(lot, 50)]
    assert world.balances(lot) == {f"depot:{world.depot}": 300, f"depot:{world.other_depot}": 200}

    clean = unique("AK")
    world.receive([clean])
    exact = dispatch(world, [{"serial": clean}]).get_json()
    done = receive(world, exact["id"], [{"serial": clean}]).get_json()
    assert done["status"] == "received" and done["shortfall"] == done["surplus"] == []


def test_cancel_returns_everything_to_the_origin(world: World) -> None:
    serial, lot = unique("AK"), unique("LOT")
    world.receive([serial], {lot: 400})
    transfer = dispatch(world, [{"serial": serial}, {"lot_number": lot, "quantity": 400}])
    transfer_id = transfer.get_json()["id"]
    receiver = world.api.token_for("clerk", [world.other_depot])
    assert_problem(
        world.api.post(f"/api/v1/transfers/{transfer_id}/cancel", token=receiver, json={}), 403
    )
    origin_clerk = world.api.token_for("clerk", [world.depot])
    response = world.api.post(
        f"/api/v1/transfers/{transfer_id}/cancel", token=origin_clerk, json={"note": "truck broke"}
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "cancelled"
    assert world.weapon(serial)["holder"] == f"depot:{world.depot}"
    assert world.balances(lot) == {f"depot:{world.depot}": 400}
    history = world.api.get(f"/api/v1/weapons/{world.weapon(serial)['id']}/history").get_json()
    assert [step["kind"] for step in history["items"]] == ["receipt", "dispatch", "cancel"]
    assert_problem(receive(world, transfer_id, [{"serial": serial}]), 409)


def test_dispatch_checks_its_input(world: World) -> None:
    serial = unique("AK")
    world.receive([serial])
    naive = assert_problem(
        dispatch(world, [{"serial": serial}], expected_by="2030-01-01T00:00"), 422
    )
    assert "expected_by" in naive["errors"]
    past = assert_problem(dispatch(world, [{"serial": serial}], expected_by=ago(hours=1)), 422)
    assert "expected_by" in past["errors"]
    assert "lines" in assert_problem(dispatch(world, []), 422)["errors"]
    unknown = assert_problem(dispatch(world, [{"serial": unique("NONE")}]), 422)
    assert "lines[0]" in unknown["errors"]
    to_self = assert_problem(dispatch(world, [{"serial": serial}], to=f"depot:{world.depot}"), 422)
    assert "to" in to_self["errors"]
    to_party = assert_problem(
        dispatch(world, [{"serial": serial}], to=f"party:{world.supplier}"), 422
    )
    assert "end_user_ref" in to_party["errors"]


def test_the_origin_clerk_writes_off_a_shortfall_from_transit(world: World) -> None:
    serial = unique("AK")
    world.receive([serial])
    transfer = dispatch(world, [{"serial": serial}]).get_json()
    assert receive(world, transfer["id"], []).get_json()["status"] == "received_with_discrepancy"
    loss = {
        "kind": "loss",
        "from": transfer["transit"],
        "occurred_at": ago(minutes=1),
        "case_ref": unique("CASE"),
        "lines": [{"serial": serial}],
    }
    receiver = world.api.token_for("clerk", [world.other_depot])
    assert_problem(world.api.post("/api/v1/movements", json=loss, token=receiver), 403)
    origin_clerk = world.api.token_for("clerk", [world.depot])
    assert world.api.post("/api/v1/movements", json=loss, token=origin_clerk).status_code == 201
    assert world.weapon(serial)["status"] == "lost"


def test_overdue_transfers_with_a_moved_clock(world: World, session: Session) -> None:
    serial = unique("AK")
    world.receive([serial])
    transfer = dispatch(world, [{"serial": serial}], expected_by=later(hours=2)).get_json()
    listed = world.api.get("/api/v1/transfers", query_string={"overdue": "true", "limit": 1000})
    assert transfer["id"] not in {t["id"] for t in listed.get_json()["items"]}
    shown = world.api.get(f"/api/v1/transfers/{transfer['id']}").get_json()
    assert shown["age_seconds"] >= 0 and shown["overdue_by_seconds"] is None

    session.rollback()
    admin = Actor("test", Role.ADMIN)
    expected_by = datetime.fromisoformat(transfer["expected_by"])
    tomorrow = expected_by + timedelta(days=1)
    overdue = session.scalars(transfers.transfers_query(session, admin, overdue=True, now=tomorrow))
    assert transfer["id"] in {str(t.id) for t in overdue}
    view = transfers.get_transfer(session, admin, _uuid(transfer["id"]), tomorrow)
    assert view.overdue_by_seconds == 24 * 3600 and view.age_seconds > 24 * 3600
    clerk = Actor("clerk", Role.CLERK, frozenset({world.other_depot}))
    scoped = transfers.transfers_query(session, clerk, status="in_transit", now=tomorrow)
    assert transfer["id"] in {str(t.id) for t in session.scalars(scoped)}


def test_a_retried_dispatch_posts_one_transfer(world: World) -> None:
    serial = unique("AK")
    world.receive([serial])
    body = {
        "from": f"depot:{world.depot}",
        "to": f"depot:{world.other_depot}",
        "expected_by": later(days=1),
        "document_ref": unique("TRF"),
        "lines": [{"serial": serial}],
    }
    headers = {"Idempotency-Key": unique("retry")}
    first = world.api.post("/api/v1/transfers", json=body, headers=headers)
    second = world.api.post("/api/v1/transfers", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.get_json() == second.get_json()
    clerk = world.api.token_for("clerk", [world.depot])
    listed = world.api.get(
        "/api/v1/transfers", token=clerk, query_string={"status": "in_transit", "limit": 1000}
    ).get_json()["items"]
    assert [t["document_ref"] for t in listed] == [body["document_ref"]]
    assert listed[0]["age_seconds"] >= 0 and "lines" not in listed[0]
