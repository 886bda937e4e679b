"""A catalogue of bad input against the API. Each entry must come back as a clear 4xx
problem+json naming the field at fault, and must write nothing (row counts and the audit head are
the same before and after). Markings are normalised (NFKC, upper case, trimmed, inner whitespace
collapsed) and control or invisible characters are refused; SQL metacharacters are stored as text
or refused, never executed.

To add a case, append a `Bad` to CATALOGUE: a body factory taking the world, the expected status
and the field the problem must name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from inventory.db.models import AuditRecord, Holder, Lot, LotHolding, Movement, Weapon
from inventory.services import audit_log

from .conftest import Api, unique
from .ledger_helpers import World, ago, make_world

PROBLEM = "application/problem+json"
COUNTED = (Holder, Weapon, Lot, LotHolding, Movement, AuditRecord)


def full_width(text: str) -> str:
    """ASCII as the full-width forms East Asian keyboards type (ＡＫ１２３ for AK123)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


@pytest.fixture
def world(api: Api) -> World:
    return make_world(api)


def receipt(world: World, **line: Any) -> dict[str, Any]:
    weapon = {"serial": unique("AK"), "manufacturer": world.maker, "item_type": world.rifle}
    return {
        "kind": "receipt",
        "from": f"party:{world.supplier}",
        "to": f"depot:{world.depot}",
        "occurred_at": ago(hours=1),
        "lines": [{"weapon": {**weapon, **line}}],
    }


def lot_receipt(world: World, quantity: Any) -> dict[str, Any]:
    return {
        **receipt(world),
        "lines": [
            {"lot": {"lot_number": unique("LOT"), "item_type": world.ammo}, "quantity": quantity}
        ],
    }


@dataclass(frozen=True)
class Bad:
    name: str
    path: str
    body: Callable[[World], Any]  # JSON-able body, or bytes sent as they are
    status: int
    field: str | None  # the key the problem's `errors` must carry (None: no field to name)


CATALOGUE = [
    Bad("malformed JSON", "/api/v1/movements", lambda w: b'{"kind": "receipt",', 400, None),
    Bad("a JSON list", "/api/v1/movements", lambda w: [receipt(w)], 422, "_schema"),
    Bad(
        "body over 8 MiB", "/api/v1/movements", lambda w: b"[" + b" " * (8 << 20) + b"]", 413, None
    ),
    Bad("unknown field", "/api/v1/movements", lambda w: {**receipt(w), "sneaky": 1}, 422, "sneaky"),
    Bad("kind is a number", "/api/v1/movements", lambda w: {**receipt(w), "kind": 7}, 422, "kind"),
    Bad("unknown kind", "/api/v1/movements", lambda w: {**receipt(w), "kind": "gift"}, 422, "kind"),
    Bad(
        "lines not a list", "/api/v1/movements", lambda w: {**receipt(w), "lines": {}}, 422, "lines"
    ),
    Bad("no lines", "/api/v1/movements", lambda w: {**receipt(w), "lines": []}, 422, "lines"),
    Bad("quantity as text", "/api/v1/movements", lambda w: lot_receipt(w, "many"), 422, "lines"),
    Bad("quantity zero", "/api/v1/movements", lambda w: lot_receipt(w, 0), 422, "lines"),
    Bad("quantity negative", "/api/v1/movements", lambda w: lot_receipt(w, -5), 422, "lines"),
    Bad("quantity fractional", "/api/v1/movements", lambda w: lot_receipt(w, 1.5), 422, "lines"),
    Bad("quantity huge", "/api/v1/movements", lambda w: lot_receipt(w, 10**30), 422, "lines"),
    Bad(
        "naive timestamp",
        "/api/v1/movements",
        lambda w: {**receipt(w), "occurred_at": "2026-11-20T09:00:00"},
        422,
        "occurred_at",
    ),
    Bad(
        "not a timestamp",
        "/api/v1/movements",
        lambda w: {**receipt(w), "occurred_at": "yesterday"},
        422,
        "occurred_at",
    ),
    Bad(
        "zero-width space in serial",
        "/api/v1/movements",
        lambda w: receipt(w, serial="AK\u200b1"),
        422,
        "lines",
    ),
    Bad(
        "right-to-left override",
        "/api/v1/movements",
        lambda w: receipt(w, serial="AK\u202e21"),
        422,
        "lines",
    ),
    Bad(
        "newline in serial", "/api/v1/movements", lambda w: receipt(w, serial="AK\n1"), 422, "lines"
    ),
    Bad("NUL in serial", "/api/v1/movements", lambda w: receipt(w, serial="AK\x001"), 422, "lines"),
    Bad("blank serial", "/api/v1/movements", lambda w: receipt(w, serial=" \u3000 "), 422, "lines"),
    Bad(
        "serial too long", "/api/v1/movements", lambda w: receipt(w, serial="A" * 101), 422, "lines"
    ),
    Bad(
        "unknown item type",
        "/api/v1/movements",
        lambda w: receipt(w, item_type="NO-SUCH-TYPE"),
        422,
        "lines[0]",
    ),
    Bad(
        "unknown destination",
        "/api/v1/movements",
        lambda w: {**receipt(w), "to": f"depot:{unique('NOPE')}"},
        422,
        "to",
    ),
    Bad(
        "unknown source",
        "/api/v1/movements",
        lambda w: {**receipt(w), "from": "party:X' OR '1'='1"},
        422,
        "from",
    ),
    Bad(
        "holder without a kind",
        "/api/v1/movements",
        lambda w: {**receipt(w), "to": w.depot},
        422,
        "to",
    ),
    Bad(
        "SQL in a depot code",
        "/api/v1/depots",
        lambda w: {"code": "D'; DROP TABLE holders;--", "name": "x"},
        422,
        "code",
    ),
    Bad(
        "unit of an unknown depot",
        "/api/v1/units",
        lambda w: {"code": unique("U"), "name": "x", "depot": "NO'--"},
        422,
        "depot",
    ),
    Bad(
        "token for an unknown depot",
        "/api/v1/tokens",
        lambda w: {"name": "c", "role": "clerk", "depots": ["D' OR 1=1"]},
        422,
        "depots",
    ),
    Bad(
        "unknown role",
        "/api/v1/tokens",
        lambda w: {"name": "c", "role": "root"},
        422,
        "role",
    ),
    Bad(
        "full-width code",
        "/api/v1/item-types",
        lambda w: {"code": full_width("AKM"), "category": "weapon", "name": "x"},
        422,
        "code",
    ),
]


def counts(app: Flask) -> dict[str, Any]:
    session = app.extensions["inventory.sessions"]()
    try:
        rows = {
            model.__tablename__: session.scalar(select(func.count()).select_from(model))
            for model in COUNTED
        }
        return {**rows, "audit head": audit_log.head(session)}
    finally:
        session.close()


@pytest.mark.parametrize("bad", CATALOGUE, ids=lambda bad: bad.name)
def test_bad_input_is_a_4xx_problem_and_writes_nothing(app: Flask, world: World, bad: Bad) -> None:
    body = bad.body(world)
    before = counts(app)
    if isinstance(body, bytes):
        headers = {"Content-Type": "application/json"}
        response = world.api.post(bad.path, data=body, headers=headers)
    else:
        response = world.api.post(bad.path, json=body)
    problem = response.get_json()
    assert response.status_code == bad.status, problem
    assert response.content_type == PROBLEM
    assert problem["status"] == bad.status and problem["detail"]
    if bad.field is not None:
        assert bad.field in problem["errors"], problem
    assert counts(app) == before


def test_full_width_and_spacing_variants_are_the_same_serial(world: World) -> None:
    serial = unique("AK")
    typed = "  " + full_width(serial.lower().replace("-", " \u00a0\t -")) + "\u3000"
    response = world.receive([typed])
    assert response.status_code == 201, response.get_json()
    stored = response.get_json()["lines"][0]["serial"]
    assert stored == serial.replace("-", " -")  # inner whitespace collapsed to one space
    assert world.weapon(full_width(stored))["serial"] == stored
    assert world.issue([f"  {stored.lower()}  "]).status_code == 201
    duplicate = world.receive([stored])
    assert duplicate.status_code == 409 and stored in duplicate.get_json()["detail"]


def test_sql_metacharacters_in_serials_are_stored_literally(app: Flask, world: World) -> None:
    tricks = [
        f"{unique('AK')}'; DROP TABLE weapons;--",
        f'{unique("AK")}" OR "1"="1',
        f"{unique('AK')}%_\\",
    ]
    response = world.receive(tricks)
    assert response.status_code == 201, response.get_json()
    for trick in tricks:
        assert world.weapon(trick)["serial"] == trick.upper()
    # A LIKE wildcard is not a wildcard: it finds nothing, not every weapon.
    found = world.api.get("/api/v1/weapons", query_string={"serial": "%"}).get_json()
    assert found["items"] == []
    before = counts(app)
    assert before["weapons"] >= len(tricks)  # the table is still there
