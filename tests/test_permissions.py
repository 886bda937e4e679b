"""The permission matrix: every /api/v1 route × every role → the status class it must get.

Roles: admin; a clerk of the depot the stock is in (`clerk_own`); a clerk of another depot
(`clerk_other`); auditor; monitor. `@allow` is the outermost check, so a role it refuses gets 403
whatever the body; a clerk outside the depot's scope gets 403 or 404 and no 2xx reply of theirs
may mention the other depot's stock.

Every registered route must have a row: a new route without one fails
`test_every_route_is_in_the_matrix`. To add a route, append a `Row` to MATRIX: the method, the
path (a template over `Scene` fields, or a function of the scene for a fresh object per call), a
body factory, and the five expectations in ROLES order. Expectations: OK (2xx), DENIED (403),
NOT_FOUND (404: what a clerk is told of another depot's things, or a monitor of another's
subscription), HIDDEN (403 or 404), GATE (the role passes the gate: not 401/403 and never 5xx;
use it until the row has a body factory that makes the call succeed, then tighten it).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from inventory.api.auth import PUBLIC_ENDPOINTS
from inventory.db.models import EndUseVerification, Holder, Stocktake

from .conftest import Api, unique
from .ledger_helpers import World, ago, make_world

ROLES = ("admin", "clerk_own", "clerk_other", "auditor", "monitor")
OK, DENIED, NOT_FOUND, HIDDEN, GATE = "2xx", "403", "404", "403/404", "gate"


@dataclass
class Scene:
    """A depot with a weapon, a lot and their receipt; tokens for each role; ids for paths."""

    world: World
    tokens: dict[str, str]
    serial: str
    weapon: str
    lot: str
    movement: str
    app: Flask
    values: dict[str, str] = field(default_factory=dict)

    def fresh_weapon(self) -> str:
        serial = unique("PERM")
        assert self.world.receive([serial]).status_code == 201
        return serial


Body = Callable[[Scene], Any]
Path = str | Callable[[Scene], str]


@dataclass(frozen=True)
class Row:
    method: str
    path: Path
    expect: tuple[str, str, str, str, str]  # in ROLES order
    body: Body | None = None
    rule: str = ""  # the Flask rule when `path` is a function (e.g. a fresh token to revoke)
    # False where clerk_other rightly sees the scene depot's stock (a transfer to their depot).
    private: bool = True

    @property
    def route(self) -> str:
        template = self.rule or str(self.path)
        return _route_key(template.split("?")[0])

    @property
    def id(self) -> str:
        return f"{self.method} {self.route}"


def _route_key(path: str) -> str:
    """`/a/<uuid:x>/b` and `/a/{x}/b` both become `/a/{}/b`."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)


def everyone_reads(path: str) -> Row:
    return Row("GET", path, (OK, OK, OK, OK, OK))


def admin_writes(path: str, body: Body) -> Row:
    return Row("POST", path, (OK, DENIED, DENIED, DENIED, DENIED), body)


def depot_scoped_read(path: str) -> Row:
    return Row("GET", path, (OK, OK, HIDDEN, OK, OK))


def _issue(scene: Scene) -> dict[str, Any]:
    world = scene.world
    return {
        "kind": "issue",
        "from": f"depot:{world.depot}",
        "to": f"unit:{world.unit}",
        "occurred_at": ago(minutes=5),
        "due_back_at": ago(days=-7),
        "lines": [{"serial": scene.fresh_weapon()}],
    }


def _revocable_token(scene: Scene) -> str:
    return scene.world.api.post(
        "/api/v1/tokens", json={"name": unique("revoke"), "role": "auditor"}
    ).get_json()["id"]


def _empty(scene: Scene) -> dict[str, Any]:
    return {}


def _later() -> str:
    return (datetime.now(UTC) + timedelta(days=10)).isoformat()


def _dispatch(scene: Scene, to: str) -> str:
    """A fresh weapon of the scene's depot dispatched to `to`; the serial goes in values."""
    serial = scene.fresh_weapon()
    scene.values["in_transit"] = serial
    response = scene.world.api.post(
        "/api/v1/transfers",
        json={
            "from": f"depot:{scene.world.depot}",
            "to": to,
            "expected_by": _later(),
            "end_user_ref": unique("EUC"),
            "document_ref": unique("EXP"),
            "lines": [{"serial": serial}],
        },
    )
    assert response.status_code == 201, response.get_json()
    return str(response.get_json()["id"])


def _transfer_order(scene: Scene) -> dict[str, Any]:
    return {
        "document_ref": unique("TO"),
        "from": f"depot:{scene.world.depot}",
        "to": f"depot:{scene.world.other_depot}",
        "expected_by": _later(),
        "lines": [{"serial": scene.fresh_weapon()}],
    }


def _arrived(scene: Scene) -> dict[str, Any]:
    received_at = datetime.now(UTC).isoformat()  # after the dispatch, which is the server's now
    return {"received_at": received_at, "lines": [{"serial": scene.values["in_transit"]}]}


def _no_open_stocktake(scene: Scene) -> dict[str, Any]:
    """Close whatever stocktake of the scene's depot is open; the body that opens the next."""
    session = scene.app.extensions["inventory.sessions"]()
    try:
        open_ids = session.scalars(
            select(Stocktake.id)
            .join(Holder, Holder.id == Stocktake.depot_id)
            .where(Holder.code == scene.world.depot, Stocktake.status == "open")
        ).all()
    finally:
        session.close()
    for stocktake_id in open_ids:
        closed = scene.world.api.post(f"/api/v1/stocktakes/{stocktake_id}/close")
        assert closed.status_code == 200, closed.get_json()
    return {"depot": scene.world.depot}


def _fresh_stocktake(scene: Scene) -> str:
    opened = scene.world.api.post("/api/v1/stocktakes", json=_no_open_stocktake(scene))
    assert opened.status_code == 201, opened.get_json()
    return str(opened.get_json()["id"])


def _subscription(scene: Scene, token: str) -> str:
    made = scene.world.api.post(
        "/api/v1/subscriptions",
        json={"url": f"https://93.184.215.14/perm?{unique()}", "events": ["discrepancy.opened"]},
        token=token,
    )
    assert made.status_code == 201, made.get_json()
    return str(made.get_json()["id"])


def _hook(scene: Scene) -> dict[str, Any]:
    return {"url": f"https://93.184.215.14/perm?{unique()}", "events": ["discrepancy.opened"]}


def _verification(scene: Scene) -> str:
    """A fresh export to the scene's partner state, delivered: its first scheduled check."""
    transfer = _dispatch(scene, f"party:{scene.values['partner']}")
    confirmed = scene.world.api.post(
        f"/api/v1/transfers/{transfer}/receipt",
        json={**_arrived(scene), "delivery_verification_ref": unique("DV")},
    )
    assert confirmed.status_code == 201, confirmed.get_json()
    session = scene.app.extensions["inventory.sessions"]()
    try:
        return str(
            session.scalar(
                select(EndUseVerification.id).where(
                    EndUseVerification.transfer_id == uuid.UUID(transfer)
                )
            )
        )
    finally:
        session.close()


def _seen(scene: Scene) -> dict[str, Any]:
    checked_at = datetime.now(UTC).isoformat()
    return {"checked_at": checked_at, "seen": [{"serial": scene.values["in_transit"]}]}


def _sighting(scene: Scene) -> dict[str, Any]:
    return {
        "serial": unique("SEEN"),
        "observed_at": ago(hours=1),
        "place": "market",
        "circumstances": "photographed",
    }


def _witness_key() -> str:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from inventory.monitor import witness_verifier_key

    return witness_verifier_key(unique("witness").lower(), Ed25519PrivateKey.generate())


NOBODY = str(uuid.UUID(int=0))  # ids of things that do not exist: the gate answers first
MATRIX: list[Row] = [
    # Reference data: admins write, everyone reads.
    everyone_reads("/api/v1/depots"),
    admin_writes("/api/v1/depots", lambda s: {"code": unique("D"), "name": "x"}),
    everyone_reads("/api/v1/depots/{depot}"),
    everyone_reads("/api/v1/units"),
    admin_writes(
        "/api/v1/units", lambda s: {"code": unique("U"), "name": "x", "depot": s.world.depot}
    ),
    everyone_reads("/api/v1/parties"),
    admin_writes(
        "/api/v1/parties",
        lambda s: {"code": unique("P"), "name": "x", "country": "XX", "kind": "recipient"},
    ),
    everyone_reads("/api/v1/item-types"),
    admin_writes(
        "/api/v1/item-types", lambda s: {"code": unique("T"), "category": "weapon", "name": "x"}
    ),
    everyone_reads("/api/v1/item-types/{rifle}"),
    # Tokens: admins only.
    Row("GET", "/api/v1/tokens", (OK, DENIED, DENIED, DENIED, DENIED)),
    admin_writes("/api/v1/tokens", lambda s: {"name": unique("t"), "role": "monitor"}),
    Row(
        "DELETE",
        lambda s: f"/api/v1/tokens/{_revocable_token(s)}",
        (OK, DENIED, DENIED, DENIED, DENIED),
        rule="/api/v1/tokens/{id}",
    ),
    # The custody ledger: clerks post for their depots; everyone reads within their scope.
    everyone_reads("/api/v1/movements"),
    Row("POST", "/api/v1/movements", (OK, OK, DENIED, DENIED, DENIED), _issue),
    depot_scoped_read("/api/v1/movements/{movement}"),
    everyone_reads("/api/v1/weapons?serial={serial}"),
    depot_scoped_read("/api/v1/weapons/{weapon}"),
    depot_scoped_read("/api/v1/weapons/{weapon}/history"),
    everyone_reads("/api/v1/lots"),
    everyone_reads("/api/v1/lots/{lot}"),  # the lot is catalogue data; balances are scoped
    everyone_reads("/api/v1/lots/{lot}/history"),
    depot_scoped_read("/api/v1/holdings?holder=depot:{depot}"),
    # Transfers: the origin's clerks dispatch and cancel, the destination's receive; a clerk of
    # neither end is told nothing (404).
    Row("GET", "/api/v1/transfers", (OK, OK, OK, OK, OK)),
    Row("POST", "/api/v1/transfers", (OK, OK, DENIED, DENIED, DENIED), _transfer_order),
    Row(
        "GET",
        lambda s: f"/api/v1/transfers/{_dispatch(s, 'depot:' + s.values['third'])}",
        (OK, OK, NOT_FOUND, OK, OK),
        rule="/api/v1/transfers/{id}",
    ),
    Row(
        "POST",
        lambda s: f"/api/v1/transfers/{_dispatch(s, 'depot:' + s.world.other_depot)}/receipt",
        (OK, DENIED, OK, DENIED, DENIED),  # clerk_other is the destination's clerk
        _arrived,
        rule="/api/v1/transfers/{id}/receipt",
        private=False,
    ),
    Row(
        "POST",
        lambda s: f"/api/v1/transfers/{_dispatch(s, 'depot:' + s.world.other_depot)}/cancel",
        (OK, OK, DENIED, DENIED, DENIED),
        _empty,
        rule="/api/v1/transfers/{id}/cancel",
    ),
    # Stocktakes: the depot's clerks; another depot's stocktake does not exist for a clerk.
    Row("POST", "/api/v1/stocktakes", (OK, OK, DENIED, DENIED, DENIED), _no_open_stocktake),
    Row(
        "POST",
        lambda s: f"/api/v1/stocktakes/{_fresh_stocktake(s)}/counts",
        (OK, OK, NOT_FOUND, DENIED, DENIED),
        lambda s: {"lines": [{"serial": s.serial}]},
        rule="/api/v1/stocktakes/{id}/counts",
    ),
    Row(
        "POST",
        lambda s: f"/api/v1/stocktakes/{_fresh_stocktake(s)}/close",
        (OK, OK, NOT_FOUND, DENIED, DENIED),
        rule="/api/v1/stocktakes/{id}/close",
    ),
    # Discrepancies: everyone reads within scope; clerks note, auditors and admins drive them.
    everyone_reads("/api/v1/discrepancies"),
    Row("GET", "/api/v1/discrepancies/{discrepancy}", (OK, OK, NOT_FOUND, OK, OK)),
    Row(
        "POST",
        "/api/v1/discrepancies/{discrepancy}/events",
        (OK, OK, NOT_FOUND, OK, DENIED),
        lambda s: {"action": "note", "note": "x"},
    ),
    Row("POST", "/api/v1/sweep", (OK, DENIED, DENIED, DENIED, DENIED)),
    Row("GET", "/api/v1/reports/accountability", (OK, OK, OK, OK, OK)),
    Row("GET", "/api/v1/alerts", (OK, DENIED, DENIED, OK, OK)),
    # Subscriptions belong to the token that made them; admins see all.
    Row("GET", "/api/v1/subscriptions", (OK, DENIED, DENIED, DENIED, OK)),
    Row("POST", "/api/v1/subscriptions", (OK, DENIED, DENIED, DENIED, OK), _hook),
    Row("GET", "/api/v1/subscriptions/{theirs}", (OK, DENIED, DENIED, DENIED, NOT_FOUND)),
    Row(
        "DELETE",
        lambda s: f"/api/v1/subscriptions/{_subscription(s, s.tokens['monitor'])}",
        (OK, DENIED, DENIED, DENIED, OK),
        rule="/api/v1/subscriptions/{id}",
    ),
    Row(
        "GET",
        "/api/v1/subscriptions/{mine}/deliveries",
        (OK, DENIED, DENIED, DENIED, OK),
    ),
    Row("POST", "/api/v1/sightings", (OK, DENIED, DENIED, DENIED, OK), _sighting),
    Row("GET", "/api/v1/trace?serial={serial}", (OK, DENIED, DENIED, OK, OK)),
    Row("GET", "/api/v1/verifications", (OK, DENIED, DENIED, OK, OK)),
    Row("GET", "/api/v1/verifications/{verification}", (OK, DENIED, DENIED, OK, OK)),
    Row(
        "POST",
        lambda s: f"/api/v1/verifications/{_verification(s)}/result",
        (OK, DENIED, DENIED, DENIED, OK),
        _seen,
        rule="/api/v1/verifications/{id}/result",
    ),
]

MATRIX += [
    Row("GET", "/api/v1/audit", (OK, DENIED, DENIED, OK, DENIED)),
    Row("GET", "/api/v1/audit/verify", (OK, DENIED, DENIED, OK, OK)),
    Row("GET", "/api/v1/audit/checkpoints", (OK, DENIED, DENIED, OK, OK)),
    Row("POST", "/api/v1/audit/checkpoints", (OK, DENIED, DENIED, DENIED, DENIED)),
    everyone_reads("/api/v1/audit/public-key"),
    # The transparency log: log readers (not clerks: records span every depot); GATE where the
    # answer depends on whether a tree head was signed yet in the shared database.
    Row("GET", "/api/v1/log/checkpoint", (GATE, DENIED, DENIED, GATE, GATE)),
    everyone_reads("/api/v1/log/verifier-key"),
    Row("GET", "/api/v1/log/proof/inclusion?seq=1&tree_size=1", (GATE, DENIED, DENIED, GATE, GATE)),
    Row(
        "GET",
        "/api/v1/log/proof/consistency?first=1&second=1",
        (GATE, DENIED, DENIED, GATE, GATE),
    ),
    Row("GET", "/api/v1/log/entries?start=1&end=1", (OK, DENIED, DENIED, OK, OK)),
    Row("GET", "/api/v1/log/search?serial={serial}", (OK, DENIED, DENIED, OK, OK)),
    Row("GET", "/api/v1/log/witnesses", (OK, DENIED, DENIED, OK, OK)),
    admin_writes("/api/v1/log/witnesses", lambda s: {"vkey": _witness_key()}),
    Row("POST", "/api/v1/log/cosignatures", (GATE, DENIED, DENIED, DENIED, GATE), _empty),
]


@pytest.fixture(scope="module")
def scene(app: Flask, admin_token: str) -> Iterator[Scene]:
    api = Api(app.test_client(), admin_token)
    world = make_world(api)
    serial, lot = unique("PERM"), unique("LOT")
    receipt = world.receive([serial], {lot: 1000}).get_json()
    tokens = {
        "admin": admin_token,
        "clerk_own": api.token_for("clerk", [world.depot]),
        "clerk_other": api.token_for("clerk", [world.other_depot]),
        "auditor": api.token_for("auditor"),
        "monitor": api.token_for("monitor"),
    }
    ids = {line.get("serial") or line["lot_number"]: line for line in receipt["lines"]}
    scene = Scene(
        world, tokens, serial, ids[serial]["weapon_id"], ids[lot]["lot_id"], receipt["id"], app
    )
    third, partner = unique("D"), unique("PARTNER")
    assert api.post("/api/v1/depots", json={"code": third, "name": third}).status_code == 201
    party = {"code": partner, "name": "Partner", "country": "YY", "kind": "recipient"}
    assert api.post("/api/v1/parties", json=party).status_code == 201
    lost = scene.fresh_weapon()
    loss = {
        "kind": "loss",
        "from": f"depot:{world.depot}",
        "occurred_at": ago(minutes=5),
        "case_ref": unique("CASE"),
        "lines": [{"serial": lost}],
    }
    assert api.post("/api/v1/movements", json=loss).status_code == 201
    losses = api.get(
        "/api/v1/discrepancies",
        query_string={"depot": world.depot, "kind": "reported_loss", "limit": 1000},
    ).get_json()["items"]
    scene.values = {"third": third, "partner": partner}
    scene.values |= {
        "discrepancy": losses[-1]["id"],
        "theirs": _subscription(scene, api.token_for("monitor")),
        "mine": _subscription(scene, tokens["monitor"]),
        "verification": _verification(scene),
    }
    scene.values |= {
        "depot": world.depot,
        "rifle": world.rifle,
        "serial": serial,
        "weapon": scene.weapon,
        "lot": scene.lot,
        "movement": scene.movement,
        "nobody": NOBODY,
    }
    yield scene


def _registered(app: Flask) -> set[str]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1") or rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            routes.add(f"{method} {_route_key(rule.rule)}")
    return routes


def test_every_route_is_in_the_matrix(app: Flask) -> None:
    registered, tabled = _registered(app), [row.id for row in MATRIX]
    assert len(tabled) == len(set(tabled)), "a route has two rows"
    missing = sorted(registered - set(tabled))
    assert not missing, f"routes without a row in MATRIX (add them): {missing}"
    stale = sorted(set(tabled) - registered)
    assert not stale, f"rows for routes that no longer exist: {stale}"


@pytest.mark.parametrize("row", MATRIX, ids=lambda row: row.id)
def test_each_role_gets_what_the_matrix_says(scene: Scene, row: Row) -> None:
    for role, expected in zip(ROLES, row.expect, strict=True):
        path = row.path(scene) if callable(row.path) else row.path.format(**scene.values)
        body = row.body(scene) if row.body else None
        response = scene.world.api.request(
            row.method, path, token=scene.tokens[role], **({"json": body} if row.body else {})
        )
        status, text = response.status_code, response.get_data(as_text=True)
        context = f"{row.id} as {role}: {status} {text[:300]}"
        assert status < 500, context
        if status >= 400:
            assert response.content_type == "application/problem+json", context
        if expected == OK:
            assert 200 <= status < 300, context
        elif expected == DENIED:
            assert status == 403, context
        elif expected == NOT_FOUND:
            assert status == 404, context
        elif expected == HIDDEN:
            assert status in (403, 404), context
        else:
            assert status not in (401, 403), context
        if role == "clerk_other" and status < 300 and row.private:
            # Nothing of the other depot's stock leaks into a clerk's successful reply.
            assert scene.serial not in text and f"depot:{scene.world.depot}" not in text, context
