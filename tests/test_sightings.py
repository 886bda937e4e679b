"""Sightings open the discrepancy the books call for, and traces name the last accountable
holder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select

from inventory.db.models import AuditRecord

from .conftest import Api, unique
from .ledger_helpers import World, ago, make_world


def sight(world: World, serial: str, token: str | None = None, **extra: Any) -> Any:
    body = {
        "serial": serial,
        "observed_at": ago(days=2),
        "place": "Checkpoint 7, northern road",
        "circumstances": "recovered from an armed group after a clash",
        **extra,
    }
    return world.api.post("/api/v1/sightings", json=body, token=token)


def test_a_weapon_issued_to_a_unit_is_sighted_and_traced_to_the_unit_and_its_depot(
    api: Api, app: Flask
) -> None:
    world = make_world(api)
    serial = unique("SN")
    assert world.receive([serial]).status_code == 201
    assert world.issue([serial]).status_code == 201
    monitor = api.token_for("monitor")

    seen = sight(world, f"  {serial.lower()} ", monitor)
    assert seen.status_code == 201, seen.get_json()
    body = seen.get_json()
    assert body["serial"] == serial and body["weapon"]["serial"] == serial
    assert body["books_holder"] == f"unit:{world.unit}" and body["books_status"] == "issued"
    found = body["discrepancy"]
    assert body["opened"] is True
    assert found["kind"] == "sighting_outside_custody" and found["severity"] == "critical"
    assert found["depot"] == world.depot and found["holder"] == f"unit:{world.unit}"
    assert found["subject"]["weapon_id"] == body["weapon"]["id"]
    assert "Checkpoint 7" in found["summary"]

    again = sight(world, serial, monitor).get_json()
    assert again["opened"] is False and again["discrepancy"]["id"] == found["id"]

    session = app.extensions["inventory.sessions"]()
    try:
        record = session.scalars(
            select(AuditRecord).where(AuditRecord.subject == f"sighting:{body['id']}")
        ).one()
        assert record.action == "sighting.record" and record.seq == body["audit_seq"]
        assert b"Checkpoint 7, northern road" in record.body
    finally:
        session.close()

    traced = api.get("/api/v1/trace", query_string={"serial": serial}, token=monitor)
    assert traced.status_code == 200, traced.get_json()
    (candidate,) = traced.get_json()["items"]
    assert candidate["weapon"]["id"] == body["weapon"]["id"]
    assert [step["kind"] for step in candidate["chain"]] == ["receipt", "issue"]
    last = candidate["last_accountable_holder"]
    assert last["holder"] == f"unit:{world.unit}" and last["depot"] == world.depot
    assert last["movement_id"] == candidate["chain"][-1]["movement_id"]


def test_a_weapon_in_store_opens_against_its_depot(api: Api) -> None:
    world = make_world(api)
    serial = unique("SN")
    assert world.receive([serial]).status_code == 201
    body = sight(world, serial).get_json()
    assert body["discrepancy"]["depot"] == world.depot
    assert body["discrepancy"]["holder"] == f"depot:{world.depot}"
    traced = api.get("/api/v1/trace", query_string={"serial": serial}).get_json()
    assert traced["items"][0]["last_accountable_holder"]["holder"] == f"depot:{world.depot}"


def test_an_unknown_serial_opens_unknown_serial_sighted(api: Api) -> None:
    world = make_world(api)
    serial = unique("NOWHERE")
    body = sight(world, serial, manufacturer="some maker").get_json()
    assert body["weapon"] is None and body["books_holder"] is None and body["opened"] is True
    assert body["discrepancy"]["kind"] == "unknown_serial_sighted"
    assert body["discrepancy"]["severity"] == "low"
    assert serial in body["discrepancy"]["summary"]
    assert api.get("/api/v1/trace", query_string={"serial": serial}).get_json()["items"] == []


def test_a_weapon_already_lost_names_the_open_loss(api: Api) -> None:
    world = make_world(api)
    serial = unique("SN")
    assert world.receive([serial]).status_code == 201
    loss = {
        "kind": "loss",
        "from": f"depot:{world.depot}",
        "occurred_at": ago(minutes=5),
        "case_ref": unique("CASE"),
        "lines": [{"serial": serial}],
    }
    assert api.post("/api/v1/movements", json=loss).status_code == 201
    body = sight(world, serial).get_json()
    assert body["books_status"] == "lost" and body["opened"] is False
    assert body["discrepancy"]["kind"] == "reported_loss"
    traced = api.get("/api/v1/trace", query_string={"serial": serial}).get_json()
    assert traced["items"][0]["last_accountable_holder"]["holder"] == f"depot:{world.depot}"


def test_a_weapon_exported_to_a_party_opens_against_its_transfer(api: Api) -> None:
    world = make_world(api)
    serial = unique("SN")
    assert world.receive([serial]).status_code == 201
    transfer = api.post(
        "/api/v1/transfers",
        json={
            "from": f"depot:{world.depot}",
            "to": f"party:{world.supplier}",
            "expected_by": (datetime.now(UTC) + timedelta(days=3)).isoformat(),
            "document_ref": unique("TRF"),
            "end_user_ref": unique("EUC"),
            "lines": [{"serial": serial}],
        },
    )
    assert transfer.status_code == 201, transfer.get_json()
    transfer_id = transfer.get_json()["id"]
    received = api.post(
        f"/api/v1/transfers/{transfer_id}/receipt",
        json={
            "received_at": datetime.now(UTC).isoformat(),
            "lines": [{"serial": serial}],
            "delivery_verification_ref": unique("DV"),
        },
    )
    assert received.status_code in (200, 201), received.get_json()

    body = sight(world, serial).get_json()
    assert body["books_status"] == "transferred_out"
    found = body["discrepancy"]
    assert found["kind"] == "sighting_outside_custody" and found["depot"] == world.depot
    assert found["subject"]["transfer_id"] == transfer_id
    traced = api.get("/api/v1/trace", query_string={"serial": serial}).get_json()
    assert traced["items"][0]["last_accountable_holder"]["holder"] == f"depot:{world.depot}"


def test_an_ambiguous_serial_needs_its_manufacturer(api: Api) -> None:
    world = make_world(api)
    serial, other_maker = unique("SN"), unique("ARSENAL")
    assert world.receive([serial]).status_code == 201
    receipt = {
        "kind": "receipt",
        "from": f"party:{world.supplier}",
        "to": f"depot:{world.depot}",
        "occurred_at": ago(hours=1),
        "lines": [
            {"weapon": {"serial": serial, "manufacturer": other_maker, "item_type": world.rifle}}
        ],
    }
    assert api.post("/api/v1/movements", json=receipt).status_code == 201
    ambiguous = sight(world, serial)
    assert ambiguous.status_code == 422
    assert "matches 2 registered weapons" in ambiguous.get_json()["errors"]["manufacturer"][0]
    assert sight(world, serial, manufacturer=other_maker).status_code == 201
    traced = api.get("/api/v1/trace", query_string={"serial": serial}).get_json()
    assert {c["weapon"]["manufacturer"] for c in traced["items"]} == {world.maker, other_maker}
    narrowed = api.get(
        "/api/v1/trace", query_string={"serial": serial, "manufacturer": other_maker}
    ).get_json()
    assert [c["weapon"]["manufacturer"] for c in narrowed["items"]] == [other_maker]


def test_who_may_record_sightings_and_trace(api: Api) -> None:
    world = make_world(api)
    clerk, auditor = api.token_for("clerk", [world.depot]), api.token_for("auditor")
    assert sight(world, "X-1", clerk).status_code == 403
    assert sight(world, "X-1", auditor).status_code == 403
    assert api.get("/api/v1/trace", query_string={"serial": "X"}, token=clerk).status_code == 403
    assert api.get("/api/v1/trace", query_string={"serial": "X"}, token=auditor).status_code == 200


def test_sighting_times_must_be_aware_and_past(api: Api) -> None:
    world = make_world(api)
    naive = sight(world, "X-2", observed_at="2026-01-01T10:00:00")
    assert naive.status_code == 422 and "observed_at" in naive.get_json()["errors"]
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert sight(world, "X-2", observed_at=future).status_code == 422
