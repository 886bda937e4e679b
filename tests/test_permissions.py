"""The permission matrix: every /api/v1 route × every role → the status class it must get.

Roles: admin; a clerk of the depot the stock is in (`clerk_own`); a clerk of another depot
(`clerk_other`); auditor; monitor. `@allow` is the outermost check, so a role it refuses gets 403
whatever the body; a clerk outside the depot's scope gets 403 or 404 and no 2xx reply of theirs
may mention the other depot's stock.

Every registered route must have a row: a new route without one fails
`test_every_route_is_in_the_matrix`. To add a route, append a `Row` to MATRIX: the method, the
path (a template over `Scene` fields, or a function of the scene for a fresh object per call), a
body factory, and the five expectations in ROLES order. Expectations: OK (2xx), DENIED (403),
HIDDEN (403 or 404: outside the clerk's depots), GATE (the role passes the gate: not 401/403 and
never 5xx; use it until the row has a body factory that makes the call succeed, then tighten it).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask

from inventory.api.auth import PUBLIC_ENDPOINTS

from .conftest import Api, unique
from .ledger_helpers import World, ago, make_world

ROLES = ("admin", "clerk_own", "clerk_other", "auditor", "monitor")
OK, DENIED, HIDDEN, GATE = "2xx", "403", "403/404", "gate"


@dataclass
class Scene:
    """A depot with a weapon, a lot and their receipt; tokens for each role; ids for paths."""

    world: World
    tokens: dict[str, str]
    serial: str
    weapon: str
    lot: str
    movement: str
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
    # Landed alongside this suite; their rows check the role gate until they get body factories.
    Row("GET", "/api/v1/transfers", (OK, OK, OK, OK, OK)),
    Row("POST", "/api/v1/transfers", (GATE, GATE, GATE, DENIED, DENIED), _empty),
    Row("GET", "/api/v1/transfers/{nobody}", (GATE, GATE, GATE, GATE, GATE)),
    Row("POST", "/api/v1/transfers/{nobody}/receipt", (GATE, GATE, GATE, DENIED, GATE), _empty),
    Row("POST", "/api/v1/transfers/{nobody}/cancel", (GATE, GATE, GATE, DENIED, DENIED), _empty),
    Row(
        "POST",
        "/api/v1/stocktakes",
        (OK, GATE, HIDDEN, DENIED, DENIED),  # the clerk's is a 409: the admin's is still open
        lambda s: {"depot": s.world.depot},
    ),
    Row("POST", "/api/v1/stocktakes/{nobody}/counts", (GATE, GATE, GATE, DENIED, DENIED), _empty),
    Row("POST", "/api/v1/stocktakes/{nobody}/close", (GATE, GATE, GATE, DENIED, DENIED)),
    everyone_reads("/api/v1/discrepancies"),
    Row("GET", "/api/v1/discrepancies/{nobody}", (GATE, GATE, GATE, GATE, GATE)),
    Row(
        "POST",
        "/api/v1/discrepancies/{nobody}/events",
        (GATE, GATE, GATE, GATE, DENIED),
        lambda s: {"action": "note", "note": "x"},
    ),
    Row("POST", "/api/v1/sweep", (OK, DENIED, DENIED, DENIED, DENIED)),
    Row("GET", "/api/v1/reports/accountability", (OK, OK, OK, OK, OK)),
    Row("GET", "/api/v1/alerts", (OK, DENIED, DENIED, OK, OK)),
    Row("GET", "/api/v1/subscriptions", (OK, DENIED, DENIED, DENIED, OK)),
    Row("POST", "/api/v1/subscriptions", (GATE, DENIED, DENIED, DENIED, GATE), _empty),
    Row("GET", "/api/v1/subscriptions/{nobody}", (GATE, DENIED, DENIED, DENIED, GATE)),
    Row("DELETE", "/api/v1/subscriptions/{nobody}", (GATE, DENIED, DENIED, DENIED, GATE)),
    Row(
        "GET",
        "/api/v1/subscriptions/{nobody}/deliveries",
        (GATE, DENIED, DENIED, DENIED, GATE),
    ),
    Row("POST", "/api/v1/sightings", (GATE, DENIED, DENIED, DENIED, GATE), _empty),
    Row("GET", "/api/v1/trace?serial={serial}", (OK, DENIED, DENIED, OK, OK)),
    Row("GET", "/api/v1/verifications", (OK, DENIED, DENIED, OK, OK)),
    Row("GET", "/api/v1/verifications/{nobody}", (GATE, DENIED, DENIED, GATE, GATE)),
    Row(
        "POST",
        "/api/v1/verifications/{nobody}/result",
        (GATE, DENIED, DENIED, DENIED, GATE),
        _empty,
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
        world, tokens, serial, ids[serial]["weapon_id"], ids[lot]["lot_id"], receipt["id"]
    )
    scene.values = {
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
        elif expected == HIDDEN:
            assert status in (403, 404), context
        else:
            assert status not in (401, 403), context
        if role == "clerk_other" and status < 300:
            # Nothing of the other depot's stock leaks into a clerk's successful reply.
            assert scene.serial not in text and f"depot:{scene.world.depot}" not in text, context
