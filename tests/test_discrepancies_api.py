"""Reading discrepancies (JSON pages, CSV) and driving their lifecycle over HTTP, with roles and
depot scope, on both databases."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from .conftest import Api, unique
from .ledger_helpers import World, ago, make_world
from .test_foundation import assert_problem


@pytest.fixture
def world(api: Api) -> World:
    return make_world(api)


def lose(world: World, serials: list[str]) -> None:
    response = world.api.post(
        "/api/v1/movements",
        json={
            "kind": "loss",
            "from": f"depot:{world.depot}",
            "occurred_at": ago(minutes=5),
            "case_ref": unique("CASE"),
            "lines": [{"serial": s} for s in serials],
        },
    )
    assert response.status_code == 201, response.get_json()


def listed(world: World, token: str | None = None, **query: Any) -> Any:
    return world.api.get(
        "/api/v1/discrepancies", query_string={"depot": world.depot, **query}, token=token
    )


def event(world: World, discrepancy: str, token: str | None = None, **body: Any) -> Any:
    return world.api.post(f"/api/v1/discrepancies/{discrepancy}/events", json=body, token=token)


def test_list_filter_and_page(world: World) -> None:
    serials = [unique("AK") for _ in range(3)]
    world.receive(serials)
    lose(world, serials)
    first = listed(world, kind="reported_loss", limit=2)
    assert first.status_code == 200, first.get_json()
    page = first.get_json()
    assert len(page["items"]) == 2 and page["next"]
    rest = listed(world, kind="reported_loss", limit=2, after=page["next"]).get_json()
    assert len(rest["items"]) == 1 and rest["next"] is None
    items = page["items"] + rest["items"]
    assert {d["depot"] for d in items} == {world.depot}
    assert all(d["severity"] == "critical" and d["status"] == "open" for d in items)
    assert all(d["subject"]["weapon_id"] and d["subject"]["movement_id"] for d in items)
    assert listed(world, severity="low").get_json()["items"] == []
    assert listed(world, status="resolved").get_json()["items"] == []
    assert_problem(listed(world, kind="no_such_kind"), 422)


def test_lifecycle_note_investigate_resolve(world: World) -> None:
    serial = unique("AK")
    world.receive([serial])
    lose(world, [serial])
    found = listed(world).get_json()["items"][0]
    clerk = world.api.token_for("clerk", [world.depot])
    auditor = world.api.token_for("auditor")
    monitor = world.api.token_for("monitor")

    noted = event(world, found["id"], clerk, action="note", note="searched the armoury")
    assert noted.status_code == 201, noted.get_json()
    assert noted.get_json()["status"] == "open"
    assert_problem(event(world, found["id"], clerk, action="investigate", note="x"), 403)
    assert_problem(event(world, found["id"], monitor, action="note", note="x"), 403)
    investigating = event(world, found["id"], auditor, action="investigate", note="case opened")
    assert investigating.get_json()["status"] == "investigating"
    body = assert_problem(event(world, found["id"], auditor, action="resolve"), 422)
    assert "note" in body["errors"]
    resolved = event(world, found["id"], auditor, action="resolve", note="written off, case X")
    assert resolved.status_code == 201 and resolved.get_json()["status"] == "resolved"
    assert_problem(event(world, found["id"], auditor, action="investigate", note="again"), 409)

    detail = world.api.get(f"/api/v1/discrepancies/{found['id']}", token=monitor).get_json()
    assert [e["action"] for e in detail["events"]] == ["opened", "note", "investigate", "resolve"]
    assert detail["events"][1]["note"] == "searched the armoury"
    assert detail["resolved_at"] and detail["summary"] == found["summary"]


def test_clerks_see_only_their_depots(world: World) -> None:
    serial = unique("AK")
    world.receive([serial])
    lose(world, [serial])
    found = listed(world).get_json()["items"][0]
    outsider = world.api.token_for("clerk", [world.other_depot])
    assert_problem(world.api.get(f"/api/v1/discrepancies/{found['id']}", token=outsider), 404)
    assert_problem(event(world, found["id"], outsider, action="note", note="x"), 404)
    assert_problem(listed(world, token=outsider), 403)
    everything = world.api.get(
        "/api/v1/discrepancies", query_string={"limit": 1000}, token=outsider
    ).get_json()
    assert found["id"] not in {d["id"] for d in everything["items"]}
    assert_problem(world.api.get(f"/api/v1/discrepancies/{unique('X')}"), 404)


def test_csv_has_a_header_and_one_plain_row_per_discrepancy(world: World) -> None:
    serials = [unique("AK") for _ in range(2)]
    world.receive(serials)
    lose(world, serials)
    response = listed(world, format="csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    header, body = rows[0], rows[1:]
    assert header[:4] == ["id", "kind", "severity", "status"] and "summary" in header
    assert len(body) == 2 and all(len(row) == len(header) for row in body)
    column = dict(zip(header, body[0], strict=True))
    assert column["depot"] == world.depot and column["kind"] == "reported_loss"
    assert column["weapon_id"] and column["detected_at"].endswith("+00:00")
    assert not any(cell.startswith(("{", "[")) for row in body for cell in row)
