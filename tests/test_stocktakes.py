"""Stocktakes over HTTP, on both databases: counting, closing, the discrepancies a count opens,
and the physical verification it records."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from inventory.db.models import OutboxEvent

from .conftest import Api, unique
from .ledger_helpers import World, make_world
from .test_foundation import assert_problem


@pytest.fixture
def world(api: Api) -> World:
    return make_world(api)


def open_stocktake(world: World, token: str | None = None) -> str:
    response = world.api.post("/api/v1/stocktakes", json={"depot": world.depot}, token=token)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["status"] == "open"
    return str(response.get_json()["id"])


def count(world: World, stocktake: str, lines: list[dict[str, Any]], **kw: Any) -> Any:
    return world.api.post(f"/api/v1/stocktakes/{stocktake}/counts", json={"lines": lines}, **kw)


def close(world: World, stocktake: str, **kw: Any) -> Any:
    return world.api.post(f"/api/v1/stocktakes/{stocktake}/close", **kw)


def discrepancies_of(world: World, **filters: str) -> list[dict[str, Any]]:
    query = {"depot": world.depot, "limit": 1000, **filters}
    response = world.api.get("/api/v1/discrepancies", query_string=query)
    assert response.status_code == 200, response.get_json()
    return list(response.get_json()["items"])


def test_count_with_missing_unexpected_and_a_short_lot(world: World) -> None:
    serials = [unique("AK") for _ in range(10)]
    elsewhere = [unique("AK") for _ in range(2)]
    lot, other_lot = unique("LOT"), unique("LOT")
    assert world.receive(serials + elsewhere, {lot: 1000, other_lot: 500}).status_code == 201
    assert world.issue(elsewhere).status_code == 201  # the books place these at the unit
    stocktake = open_stocktake(world)

    counted = serials[3:]  # 3 missing
    first = count(world, stocktake, [{"serial": s} for s in counted[:4]])
    assert first.status_code == 201, first.get_json()
    assert first.get_json()["weapons"] == 4
    unknown = unique("NOSUCH")
    lines = [{"serial": s.lower()} for s in counted[4:]]  # markings are normalised
    lines += [{"serial": elsewhere[0]}, {"serial": unknown, "manufacturer": "NOBODY"}]
    lines += [{"serial": counted[0]}]  # counted twice counts once
    lines += [{"lot_number": lot, "item_type": world.ammo, "quantity": 600}]
    lines += [{"lot_number": lot, "item_type": world.ammo, "quantity": 300}]
    lines += [{"lot_number": other_lot, "quantity": 500}]
    second = count(world, stocktake, lines)
    assert second.status_code == 201, second.get_json()
    assert second.get_json()["unknown_serials"] == [
        {"serial": unknown, "manufacturer": "NOBODY", "item_type": None}
    ]

    response = close(world, stocktake)
    assert response.status_code == 200, response.get_json()
    result = response.get_json()
    assert result["expected"] == 10 and result["counted"] == 9
    assert sorted(m["serial"] for m in result["missing"]) == sorted(serials[:3])
    assert sorted(u["serial"] for u in result["unexpected"]) == sorted([elsewhere[0], unknown])
    books = {u["serial"]: u["books"] for u in result["unexpected"]}
    assert books == {elsewhere[0]: f"unit:{world.unit}", unknown: None}
    assert [(v["expected"], v["counted"]) for v in result["lot_variances"]] == [(1000, 900)]
    assert result["verified"] == 7

    opened = discrepancies_of(world)
    assert sorted(d["id"] for d in opened) == sorted(result["discrepancies"])
    kinds = sorted((d["kind"], d["severity"]) for d in opened)
    assert kinds == [
        ("count_missing", "critical"),
        ("count_missing", "critical"),
        ("count_missing", "critical"),
        ("count_unexpected", "high"),
        ("count_unexpected", "high"),
        ("count_variance", "high"),
    ]
    variance = next(d for d in opened if d["kind"] == "count_variance")
    assert variance["subject"]["quantity"] == 100 and "100 short" in variance["summary"]

    # A closed stocktake takes no more counts, and cannot close twice.
    assert_problem(count(world, stocktake, [{"serial": serials[0]}]), 409)
    assert_problem(close(world, stocktake), 409)


def test_recounting_opens_nothing_twice_and_over_counts_are_medium(world: World) -> None:
    serials = [unique("AK") for _ in range(3)]
    lot = unique("LOT")
    world.receive(serials, {lot: 100})
    for _ in range(2):
        stocktake = open_stocktake(world)
        count(world, stocktake, [{"serial": serials[0]}, {"lot_number": lot, "quantity": 120}])
        result = close(world, stocktake).get_json()
        assert len(result["missing"]) == 2
    opened = discrepancies_of(world)
    assert len(opened) == 3  # two missing and one variance, from the first close only
    variance = next(d for d in opened if d["kind"] == "count_variance")
    assert variance["severity"] == "medium" and "20 over" in variance["summary"]


def test_a_complete_count_records_verification_and_opens_nothing(world: World) -> None:
    serials = [unique("AK") for _ in range(5)]
    world.receive(serials)
    ids = [world.weapon(s)["id"] for s in serials]
    stocktake = open_stocktake(world)
    assert count(world, stocktake, [{"weapon_id": i} for i in ids]).status_code == 201
    result = close(world, stocktake).get_json()
    assert result["missing"] == [] and result["unexpected"] == [] and result["discrepancies"] == []
    assert result["verified"] == 5 and result["expected"] == result["counted"] == 5


def test_clerks_count_only_their_depots(world: World) -> None:
    mine = world.api.token_for("clerk", [world.depot])
    theirs = world.api.token_for("clerk", [world.other_depot])
    auditor = world.api.token_for("auditor")
    world.receive([unique("AK")])
    assert_problem(
        world.api.post("/api/v1/stocktakes", json={"depot": world.depot}, token=theirs), 403
    )
    assert_problem(
        world.api.post("/api/v1/stocktakes", json={"depot": world.depot}, token=auditor), 403
    )
    stocktake = open_stocktake(world, token=mine)
    assert_problem(
        world.api.post("/api/v1/stocktakes", json={"depot": world.depot}, token=mine), 409
    )
    # Another depot's stocktake reads, to its clerks, as no stocktake at all.
    assert_problem(count(world, stocktake, [{"serial": "X"}], token=theirs), 404)
    assert_problem(close(world, stocktake, token=theirs), 404)
    assert close(world, stocktake, token=mine).status_code == 200


def test_bad_count_lines_are_named(world: World) -> None:
    lot = unique("LOT")
    world.receive([unique("AK")], {lot: 10})
    stocktake = open_stocktake(world)
    body = assert_problem(
        count(
            world,
            stocktake,
            [{"serial": "A", "quantity": 2}, {"lot_number": lot}, {"weapon_id": unique("X")}],
        ),
        422,
    )
    assert {"lines"} <= set(body["errors"])
    body = assert_problem(
        count(world, stocktake, [{"lot_number": unique("NOLOT"), "quantity": 1}]), 422
    )
    assert "no registered lot" in body["errors"]["lines[0]"][0]
    assert_problem(world.api.post("/api/v1/stocktakes", json={"depot": unique("D")}), 422)
    assert_problem(close(world, "00000000-0000-0000-0000-000000000000"), 404)


def test_a_depot_nobody_counted_opens_one_discrepancy_per_weapon(world: World, app: Flask) -> None:
    """Enough findings for the bulk path (COPY on PostgreSQL): every one is stored with its
    "opened" event and its alert, and the close names them all."""
    serials = [unique("AK") for _ in range(60)]
    assert world.receive(serials).status_code == 201
    result = close(world, open_stocktake(world)).get_json()
    assert result["expected"] == 60 and len(result["missing"]) == 60
    opened = discrepancies_of(world, kind="count_missing")
    assert sorted(d["id"] for d in opened) == sorted(result["discrepancies"])
    missing = {m["weapon_id"] for m in result["missing"]}
    assert {d["subject"]["weapon_id"] for d in opened} == missing
    detail = world.api.get(f"/api/v1/discrepancies/{opened[0]['id']}").get_json()
    assert [e["action"] for e in detail["events"]] == ["opened"]
    session = app.extensions["inventory.sessions"]()
    try:
        alerts = session.scalars(
            select(OutboxEvent.payload).where(
                OutboxEvent.depot == world.depot, OutboxEvent.type == "discrepancy.opened"
            )
        ).all()
    finally:
        session.close()
    assert sorted(json.loads(a)["id"] for a in alerts) == sorted(result["discrepancies"])
