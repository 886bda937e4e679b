"""Every list pages to its end. The lists are found in the served OpenAPI document (each GET whose
200 body is an `{items, next}` envelope), not kept by hand: for each, a filler makes more items
than a small `limit`, and the test follows `next` from the first page to the last, in every order
the list offers. Each item must come exactly once, in the list's order, the same as one big page;
newest first must be oldest first reversed; and a list read without `order` must come in the
order its document says is the default.

A new list endpoint fails `test_every_list_has_a_filler` until a filler is added to FILLERS, so the
test stays complete. Runs on a database of its own per backend, so a walk meets only the few
hundred rows the fillers make."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from inventory import create_app
from inventory.domain.actors import operator
from inventory.services import delivery, tokens
from inventory.services.unit_of_work import Context, run_write
from inventory.settings import Settings

from .conftest import Api, create_database, drop_database, make_settings, unique
from .ledger_helpers import World, ago, make_world

LIMIT = 3
ENOUGH = 2 * LIMIT + 1  # three pages, the last one short
PUBLIC_HOOK = "https://93.184.215.14/stockpile-hook"  # never contacted


def envelope_lists(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The GET operations whose 200 JSON body is an `{items, next}` page, by path."""
    schemas = spec.get("components", {}).get("schemas", {})
    found = {}
    for path, operations in spec["paths"].items():
        get = operations.get("get")
        if not get:
            continue
        content = get.get("responses", {}).get("200", {}).get("content", {})
        schema = content.get("application/json", {}).get("schema", {})
        if "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
        if set(schema.get("properties", {})) == {"items", "next"}:
            found[path] = get
    return found


@cache
def served_spec() -> dict[str, Any]:
    """The OpenAPI document as the app serves it (no database is touched to serve it)."""
    app = create_app({"SETTINGS": Settings(database_url="sqlite://", log_level="WARNING")})
    try:
        response = app.test_client().get("/api/v1/openapi.json")
        assert response.status_code == 200
        spec: dict[str, Any] = response.get_json()
        return spec
    finally:
        app.extensions["inventory.engine"].dispose()


def order_default(operation: dict[str, Any]) -> str | None:
    """The documented default of the list's `order` parameter; None if it has none."""
    for parameter in operation.get("parameters", []):
        if parameter.get("name") == "order" and parameter.get("in") == "query":
            return str(parameter["schema"]["default"])
    return None


@dataclass
class Filling:
    api: Api
    app: Flask
    world: World


def post_ok(api: Api, path: str, body: dict[str, Any], token: str | None = None) -> Any:
    response = api.post(path, json=body, token=token)
    assert response.status_code in (200, 201), (path, response.get_json())
    return response.get_json()


def fill_depots(f: Filling) -> str:
    for _ in range(ENOUGH):
        code = unique("PGD")
        post_ok(f.api, "/api/v1/depots", {"code": code, "name": code})
    return "/api/v1/depots"


def fill_units(f: Filling) -> str:
    for _ in range(ENOUGH):
        code = unique("PGU")
        post_ok(f.api, "/api/v1/units", {"code": code, "name": code, "depot": f.world.depot})
    return "/api/v1/units"


def fill_parties(f: Filling) -> str:
    for _ in range(ENOUGH):
        body = {"code": unique("PGP"), "name": "Party", "country": "XX", "kind": "supplier"}
        post_ok(f.api, "/api/v1/parties", body)
    return "/api/v1/parties"


def fill_item_types(f: Filling) -> str:
    for _ in range(ENOUGH):
        body = {"code": unique("PGT"), "category": "weapon", "name": "Rifle"}
        post_ok(f.api, "/api/v1/item-types", body)
    return "/api/v1/item-types"


def fill_tokens(f: Filling) -> str:
    for _ in range(ENOUGH):
        f.api.token_for("monitor")
    return "/api/v1/tokens"


def received(f: Filling, count: int) -> list[str]:
    """`count` new weapons received at the world's depot; their serials."""
    serials = [unique("PGW") for _ in range(count)]
    assert f.world.receive(serials).status_code == 201
    return serials


def fill_movements(f: Filling) -> str:
    for _ in range(ENOUGH):
        received(f, 1)
    return "/api/v1/movements"


def fill_weapons(f: Filling) -> str:
    received(f, ENOUGH)
    return "/api/v1/weapons"


def fill_weapon_history(f: Filling) -> str:
    [serial] = received(f, 1)
    back = {"kind": "return", "from": f"unit:{f.world.unit}", "to": f"depot:{f.world.depot}"}
    for step in range(ENOUGH - 1):
        if step % 2 == 0:
            assert f.world.issue([serial]).status_code == 201
        else:
            lines = [{"serial": serial}]
            post_ok(f.api, "/api/v1/movements", {**back, "occurred_at": ago(), "lines": lines})
    return f"/api/v1/weapons/{f.world.weapon(serial)['id']}/history"


def fill_lots(f: Filling) -> str:
    assert f.world.receive([], {unique("PGL"): 10 for _ in range(ENOUGH)}).status_code == 201
    return "/api/v1/lots"


def fill_lot_history(f: Filling) -> str:
    lot = unique("PGL")
    receipt = f.world.receive([], {lot: 100}).get_json()
    line = {"lot_number": lot, "item_type": f.world.ammo, "quantity": 1}
    issue = {
        "kind": "issue",
        "from": f"depot:{f.world.depot}",
        "to": f"unit:{f.world.unit}",
        "due_back_at": ago(days=-30),
    }
    for _ in range(ENOUGH - 1):
        post_ok(f.api, "/api/v1/movements", {**issue, "occurred_at": ago(), "lines": [line]})
    return f"/api/v1/lots/{receipt['lines'][0]['lot_id']}/history"


def dispatched(f: Filling, to: str, serial: str) -> dict[str, Any]:
    body = {
        "from": f"depot:{f.world.depot}",
        "to": to,
        "expected_by": (datetime.now(UTC) + timedelta(days=10)).isoformat(),
        "document_ref": unique("PGX"),
        "lines": [{"serial": serial}],
    }
    if to.startswith("party:"):
        body["end_user_ref"] = unique("EUC")
    return dict(post_ok(f.api, "/api/v1/transfers", body))


def fill_transfers(f: Filling) -> str:
    for serial in received(f, ENOUGH):
        dispatched(f, f"depot:{f.world.other_depot}", serial)
    return "/api/v1/transfers"


def fill_verifications(f: Filling) -> str:
    recipient = unique("PGR")
    party = {"code": recipient, "name": "Partner", "country": "YY", "kind": "recipient"}
    post_ok(f.api, "/api/v1/parties", party)
    monitor = f.api.token_for("monitor")
    for serial in received(f, ENOUGH):
        transfer = dispatched(f, f"party:{recipient}", serial)
        body = {
            "received_at": datetime.now(UTC).isoformat(),
            "lines": [{"serial": serial}],
            "delivery_verification_ref": unique("DV"),
        }
        post_ok(f.api, f"/api/v1/transfers/{transfer['id']}/receipt", body, token=monitor)
    return "/api/v1/verifications"


def subscribed(f: Filling) -> dict[str, Any]:
    """A new subscription to the world depot's discrepancies, by a monitor of its own (so no
    per-owner cap is reached)."""
    body = {"url": f"{PUBLIC_HOOK}/{unique('h')}", "events": ["discrepancy.opened"]}
    return dict(post_ok(f.api, "/api/v1/subscriptions", body, token=f.api.token_for("monitor")))


def lost(f: Filling, count: int) -> None:
    """`count` weapons received and reported lost: a discrepancy and an alert each."""
    for serial in received(f, count):
        body = {
            "kind": "loss",
            "from": f"depot:{f.world.depot}",
            "occurred_at": ago(seconds=1),
            "case_ref": unique("CASE"),
            "lines": [{"serial": serial}],
        }
        post_ok(f.api, "/api/v1/movements", body)


def fill_subscriptions(f: Filling) -> str:
    for _ in range(ENOUGH):
        subscribed(f)
    return "/api/v1/subscriptions"


def fill_deliveries(f: Filling) -> str:
    subscription = subscribed(f)
    lost(f, ENOUGH)
    session = f.app.extensions["inventory.sessions"]()
    try:
        while delivery.fan_out(session, datetime.now(UTC) + timedelta(minutes=1)):
            pass
    finally:
        session.close()
    return f"/api/v1/subscriptions/{subscription['id']}/deliveries"


def fill_alerts(f: Filling) -> str:
    lost(f, ENOUGH)
    return "/api/v1/alerts"


def fill_discrepancies(f: Filling) -> str:
    lost(f, ENOUGH)
    return "/api/v1/discrepancies"


def fill_audit(f: Filling) -> str:
    fill_depots(f)
    return "/api/v1/audit"


def fill_checkpoints(f: Filling) -> str:
    for _ in range(ENOUGH):
        fill_depots(f)  # a checkpoint signs a head no earlier checkpoint signed
        post_ok(f.api, "/api/v1/audit/checkpoints", {})
    return "/api/v1/audit/checkpoints"


@dataclass(frozen=True)
class Filler:
    fill: Callable[[Filling], str]  # makes at least ENOUGH items; returns the list's URL
    # The item's sort key when the list shows it, to check the order against; None when the
    # list is ordered by something its items do not show (a movement's seq, say).
    key: Callable[[dict[str, Any]], Any] | None = None


def by_uuid(item: dict[str, Any]) -> uuid.UUID:
    return uuid.UUID(item["id"])


FILLERS: dict[str, Filler] = {
    "/api/v1/depots": Filler(fill_depots),
    "/api/v1/units": Filler(fill_units),
    "/api/v1/parties": Filler(fill_parties),
    "/api/v1/item-types": Filler(fill_item_types),
    "/api/v1/tokens": Filler(fill_tokens, by_uuid),
    "/api/v1/movements": Filler(fill_movements),
    "/api/v1/weapons": Filler(fill_weapons, by_uuid),
    "/api/v1/weapons/{weapon_id}/history": Filler(fill_weapon_history),
    "/api/v1/lots": Filler(fill_lots, by_uuid),
    "/api/v1/lots/{lot_id}/history": Filler(fill_lot_history),
    "/api/v1/transfers": Filler(fill_transfers, by_uuid),
    "/api/v1/verifications": Filler(fill_verifications, by_uuid),
    "/api/v1/subscriptions": Filler(fill_subscriptions, by_uuid),
    "/api/v1/subscriptions/{subscription_id}/deliveries": Filler(
        fill_deliveries, lambda item: item["id"]
    ),
    "/api/v1/alerts": Filler(fill_alerts),
    "/api/v1/discrepancies": Filler(fill_discrepancies),
    "/api/v1/audit": Filler(fill_audit, lambda item: item["seq"]),
    "/api/v1/audit/checkpoints": Filler(fill_checkpoints, lambda item: item["seq"]),
}


def test_every_list_has_a_filler() -> None:
    lists = set(envelope_lists(served_spec()))
    assert len(lists) >= 15, "the discovery found too few lists: has the envelope changed?"
    assert lists - set(FILLERS) == set(), "new list endpoints: add a filler to FILLERS"
    assert set(FILLERS) - lists == set(), "fillers for lists that are gone: remove them"


@pytest.fixture(scope="module")
def filling(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filling]:
    """An app on a database of its own, with an admin token and a small world."""
    tmp = tmp_path_factory.mktemp(f"paging-{backend}")
    url = create_database(backend, Path(tmp))
    app = create_app({"SETTINGS": make_settings(url, Path(tmp))})
    session = app.extensions["inventory.sessions"]()
    try:
        issued = run_write(
            session,
            Context(actor=operator("tests")),
            lambda uow: tokens.create_token(uow, "paging admin", "admin", []),
            lambda issued, _uow: issued.secret,
        )
    finally:
        session.close()
    api = Api(app.test_client(), str(issued.body))
    yield Filling(api, app, make_world(api))
    app.extensions["inventory.engine"].dispose()
    drop_database(url)


def walk(api: Api, url: str, order: str | None) -> list[dict[str, Any]]:
    """Every item of the list at `url`, following `next` from the first page to the last."""
    items: list[dict[str, Any]] = []
    query: dict[str, Any] = {"limit": LIMIT, **({"order": order} if order else {})}
    for _ in range(1000):
        response = api.get(url, query_string=query)
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        assert len(page["items"]) <= LIMIT
        items += page["items"]
        # A feed (alerts, oldest first) keeps `next` on its last page: an empty page ends it.
        if page["next"] is None or not page["items"]:
            return items
        query["after"] = page["next"]
    raise AssertionError(f"{url} did not end after 1000 pages")


def one_page(api: Api, url: str, order: str | None) -> list[dict[str, Any]]:
    query: dict[str, Any] = {"limit": 1000, **({"order": order} if order else {})}
    page = api.get(url, query_string=query).get_json()
    assert page["next"] is None or len(page["items"]) < 1000, "more than one big page"
    return list(page["items"])


def identities(items: list[dict[str, Any]]) -> list[str]:
    """What names each item: its id, seq, code or movement, else all of it. Items can carry
    figures of the moment they were read (a transfer's age), so whole items would differ."""
    names = []
    for item in items:
        key = next((k for k in ("id", "seq", "code", "movement_id") if k in item), None)
        names.append(str(item[key]) if key else json.dumps(item, sort_keys=True))
    return names


@pytest.mark.parametrize("path", sorted(envelope_lists(served_spec())))
def test_every_list_pages_to_its_end_in_order(filling: Filling, path: str) -> None:
    filler = FILLERS.get(path)
    assert filler is not None, f"{path} is a list without a filler: add one to FILLERS"
    url = filler.fill(filling)
    default = order_default(envelope_lists(served_spec())[path])
    orders: list[str | None] = ["asc", "desc"] if default else [None]
    walked: dict[str | None, list[dict[str, Any]]] = {}
    for order in orders:
        items = walk(filling.api, url, order)
        assert len(items) >= ENOUGH, f"{url}: the filler made too few items"
        seen = identities(items)
        assert len(set(seen)) == len(seen), f"{url} ({order}): an item came twice"
        whole = identities(one_page(filling.api, url, order))
        assert seen == whole, f"{url} ({order}): the pages differ from one big page"
        if filler.key is not None:
            keys = [filler.key(item) for item in items]
            expected = sorted(keys, reverse=order == "desc")
            assert keys == expected, f"{url} ({order}): out of order"
        walked[order] = items
    if default:
        assert identities(walked["desc"]) == identities(walked["asc"])[::-1]
        undirected = identities(walk(filling.api, url, None))
        assert undirected == identities(walked[default]), f"{url}: the default is not {default}"
