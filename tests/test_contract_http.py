"""The HTTP conventions clients rely on, one test each: Location on 201, WWW-Authenticate on 401,
415 for a body that is not JSON, a distinct 422 for a reused Idempotency-Key, CORS only for
allowed origins, Accept: text/csv, and ETag / If-None-Match."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from inventory import create_app

from .conftest import Api, make_settings, unique
from .ledger_helpers import ago, make_world

PROBLEM = "application/problem+json"
ORIGIN = "https://console.stockpile.example"


def problem_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == PROBLEM
    body: dict[str, Any] = response.get_json()
    assert body["status"] == status
    return body


def test_every_201_says_where_the_created_resource_is(api: Api) -> None:
    world = make_world(api)
    serial = unique("LOC")
    created: list[tuple[Any, str]] = []

    movement = world.receive([serial])
    created.append((movement, f"/api/v1/movements/{movement.get_json()['id']}"))
    item_type = unique("ITEM")
    body = {"code": item_type, "category": "weapon", "name": "Pistol"}
    created.append((api.post("/api/v1/item-types", json=body), f"/api/v1/item-types/{item_type}"))
    depot = unique("D")
    body = {"code": depot, "name": "Depot"}
    created.append((api.post("/api/v1/depots", json=body), f"/api/v1/depots/{depot}"))
    transfer = api.post(
        "/api/v1/transfers",
        json={
            "from": f"depot:{world.depot}",
            "to": f"depot:{world.other_depot}",
            "expected_by": ago(days=-2),
            "document_ref": unique("TRF"),
            "lines": [{"serial": serial}],
        },
    )
    transfer_url = f"/api/v1/transfers/{transfer.get_json()['id']}"
    created.append((transfer, transfer_url))
    receipt = api.post(
        transfer_url + "/receipt",
        json={"received_at": ago(seconds=0), "lines": [{"serial": serial}]},
    )
    created.append((receipt, transfer_url))
    token = api.post("/api/v1/tokens", json={"name": unique("loc"), "role": "auditor"})
    created.append((token, f"/api/v1/tokens/{token.get_json()['id']}"))
    stocktake = api.post("/api/v1/stocktakes", json={"depot": world.other_depot})
    stocktake_url = f"/api/v1/stocktakes/{stocktake.get_json()['id']}"
    created.append((stocktake, stocktake_url))
    counts = api.post(stocktake_url + "/counts", json={"lines": [{"serial": serial}]})
    created.append((counts, f"{stocktake_url}/counts/{counts.get_json()['id']}"))

    for response, location in created:
        assert response.status_code == 201, response.get_json()
        assert response.headers["Location"] == location
    # Where the API has a read for it, the Location answers with what the 201 returned.
    for response, location in created[:3]:
        assert api.get(location).get_json() == response.get_json()


def test_a_401_carries_a_bearer_challenge(client: FlaskClient) -> None:
    without = client.get("/api/v1/depots")
    problem_of(without, 401)
    assert without.headers["WWW-Authenticate"] == 'Bearer realm="stockpile"'

    wrong = client.get("/api/v1/depots", headers={"Authorization": "Bearer stk_unknown"})
    problem_of(wrong, 401)
    challenge = wrong.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="stockpile", error="invalid_token"'), challenge


@pytest.mark.parametrize(
    "headers",
    [{"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"}, {}],
    ids=["text", "form", "no-content-type"],
)
def test_a_body_that_is_not_json_is_415(api: Api, headers: dict[str, str]) -> None:
    body = json.dumps({"code": unique("D"), "name": "Depot"})
    refused = api.post("/api/v1/depots", data=body, headers=headers)
    problem = problem_of(refused, 415)
    assert problem["type"].endswith("/unsupported-media-type")
    assert refused.headers["Accept-Post"] == "application/json"
    # The same body as JSON is taken.
    assert api.post("/api/v1/depots", data=body, content_type="application/json").status_code == 201


def test_a_reused_idempotency_key_is_a_422_unlike_a_refusal_by_the_books(api: Api) -> None:
    world = make_world(api)
    serial = unique("IDEM")
    receipt = {
        "kind": "receipt",
        "from": f"party:{world.supplier}",
        "to": f"depot:{world.depot}",
        "occurred_at": ago(hours=1),
        "lines": [{"weapon": {"serial": serial, "manufacturer": "M", "item_type": world.rifle}}],
    }
    key = {"Idempotency-Key": unique("key")}
    first = api.post("/api/v1/movements", json=receipt, headers=key)
    assert first.status_code == 201
    replay = api.post("/api/v1/movements", json=receipt, headers=key)
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json() == first.get_json()

    other = {**receipt, "note": "another request"}
    reused = problem_of(api.post("/api/v1/movements", json=other, headers=key), 422)
    assert reused["type"].endswith("/idempotency-key-reused")
    assert "Idempotency-Key" in reused["errors"]
    # The books refusing (the same serial received twice) is another type and status.
    refused = problem_of(api.post("/api/v1/movements", json=receipt), 409)
    assert refused["type"] != reused["type"]


@pytest.fixture
def cors_app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    settings = dataclasses.replace(make_settings(database_url, tmp_path), cors_origins=(ORIGIN,))
    app = create_app({"SETTINGS": settings})
    yield app
    app.extensions["inventory.engine"].dispose()


def test_cors_is_off_unless_the_origin_is_allowed(
    client: FlaskClient, cors_app: Flask, admin_token: str
) -> None:
    preflight = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization, Content-Type, Idempotency-Key",
    }
    # Off by default: the preflight is answered without a token, but allows nobody.
    default = client.options("/api/v1/movements", headers=preflight)
    assert default.status_code == 200
    assert "Access-Control-Allow-Origin" not in default.headers

    allowed = cors_app.test_client()
    answer = allowed.options("/api/v1/movements", headers=preflight)
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in answer.headers["Access-Control-Allow-Methods"]
    assert "Idempotency-Key" in answer.headers["Access-Control-Allow-Headers"]
    read = allowed.get(
        "/api/v1/depots", headers={"Origin": ORIGIN, "Authorization": f"Bearer {admin_token}"}
    )
    assert read.status_code == 200 and read.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Location" in read.headers["Access-Control-Expose-Headers"]
    assert "Origin" in read.headers["Vary"]
    # An origin not on the list gets no CORS headers even from the CORS-enabled app.
    other = allowed.options("/api/v1/movements", headers={**preflight, "Origin": "https://evil"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_accept_text_csv_chooses_csv_like_format_csv(api: Api) -> None:
    path = "/api/v1/reports/accountability"
    by_accept = api.get(path, headers={"Accept": "text/csv"})
    by_query = api.get(path, query_string={"format": "csv"})
    assert by_accept.status_code == 200 and by_accept.mimetype == "text/csv"
    assert (
        by_accept.get_data(as_text=True).splitlines()[0]
        == (by_query.get_data(as_text=True).splitlines()[0])
    )
    assert "Accept" in by_accept.headers["Vary"]
    # An explicit format in the query wins; without either, JSON.
    explicit = api.get(path, query_string={"format": "json"}, headers={"Accept": "text/csv"})
    assert explicit.mimetype == "application/json"
    assert api.get(path).mimetype == "application/json"
    listed = api.get("/api/v1/discrepancies", headers={"Accept": "text/csv, */*;q=0.1"})
    assert listed.mimetype == "text/csv"


def test_a_single_resource_has_an_etag_and_answers_304_while_it_matches(api: Api) -> None:
    world = make_world(api)
    serial = unique("TAG")
    world.receive([serial])
    url = f"/api/v1/weapons/{world.weapon(serial)['id']}"
    first = api.get(url)
    etag = first.headers["ETag"]
    unchanged = api.get(url, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.get_data() == b""
    assert unchanged.headers["ETag"] == etag

    assert world.issue([serial]).status_code == 201
    changed = api.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert changed.get_json()["holder"] != first.get_json()["holder"]


def test_a_concurrent_duplicate_waits_for_the_first_and_replays_it(
    app: Flask, api: Api, backend: str, database_url: str
) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite runs one write at a time: a duplicate always finds the first done")
    world = make_world(api)
    serial = unique("TWICE")
    world.receive([serial])
    weapon_id = world.weapon(serial)["id"]
    issue = {
        "kind": "issue",
        "from": f"depot:{world.depot}",
        "to": f"unit:{world.unit}",
        "occurred_at": ago(minutes=5),
        "due_back_at": ago(days=-30),
        "lines": [{"weapon_id": weapon_id}],
    }
    headers = {"Authorization": f"Bearer {api.token}", "Idempotency-Key": unique("key")}
    answers: list[Any] = []

    def post() -> None:
        answers.append(app.test_client().post("/api/v1/movements", json=issue, headers=headers))

    engine = create_engine(database_url)
    try:
        with engine.connect() as holder:
            # Hold the weapon's row so both requests queue behind it, then let them go together.
            holder.execute(
                text("SELECT 1 FROM weapon_holdings WHERE weapon_id = :id FOR UPDATE"),
                {"id": weapon_id},
            )
            threads = [threading.Thread(target=post) for _ in range(2)]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 30
            while _waiting_on_locks(engine) < 2:
                assert time.monotonic() < deadline, "the two requests never queued on the lock"
                time.sleep(0.05)
            holder.rollback()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        engine.dispose()

    assert [a.status_code for a in answers] == [201, 201], [a.get_json() for a in answers]
    assert answers[0].get_json() == answers[1].get_json()
    assert sorted(a.headers.get("Idempotent-Replayed", "") for a in answers) == ["", "true"]


def _waiting_on_locks(engine: Any) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )
