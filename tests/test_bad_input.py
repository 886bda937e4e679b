"""A catalogue of bad input against the API. Each entry must come back as a clear 4xx
problem+json naming the field at fault, and must write nothing (row counts and the audit head are
the same before and after). Markings are normalised (NFKC, upper case, trimmed, inner whitespace
collapsed) and control or invisible characters are refused; SQL metacharacters are stored as text
or refused, never executed.

To add a case, append a `Bad` to CATALOGUE: a body factory taking the world, the expected status
and the field the problem must name."""

from __future__ import annotations

import base64
import json
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
from .test_paging import served_spec

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
    path: str | Callable[[World], str]
    body: Callable[[World], Any] | None  # JSON-able body, bytes sent as they are, None for GET
    status: int
    field: str | None  # the key the problem's `errors` must carry (None: no field to name)
    method: str = "POST"
    query: Callable[[World], dict[str, Any]] | None = None
    headers: dict[str, str] | None = None


def raw(text: str) -> bytes:
    """A body sent exactly as written (json= would re-encode it)."""
    return text.encode("utf-8")


def cursor_of(value: Any) -> str:
    """A cursor-shaped forgery: base64url of `value` as JSON, as real cursors are made."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def real_cursor(world: World, path: str, **query: Any) -> str:
    """The `next` the API gives for the first page of `path`, after making a page's worth."""
    assert world.receive([unique("CUR"), unique("CUR")], {unique("LOT"): 1, unique("LOT"): 1})
    page = world.api.get(path, query_string={"limit": 1, **query}).get_json()
    assert page["next"], page
    return str(page["next"])


def open_stocktake(world: World) -> str:
    opened = world.api.post("/api/v1/stocktakes", json={"depot": world.depot})
    assert opened.status_code == 201, opened.get_json()
    return f"/api/v1/stocktakes/{opened.get_json()['id']}/counts"


def counted(world: World, quantity: Any) -> dict[str, Any]:
    line = {"lot_number": unique("LOT"), "item_type": world.ammo, "quantity": quantity}
    return {"lines": [line]}


def issue(world: World, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "issue",
        "from": f"depot:{world.depot}",
        "to": f"unit:{world.unit}",
        "occurred_at": ago(hours=1),
        "due_back_at": ago(days=-30),
        "lines": [{"serial": unique("AK")}],
        **extra,
    }


def transfer(world: World, **extra: Any) -> dict[str, Any]:
    return {
        "from": f"depot:{world.depot}",
        "to": f"depot:{world.other_depot}",
        "expected_by": ago(days=-10),
        "document_ref": unique("TX"),
        "lines": [{"serial": unique("AK")}],
        **extra,
    }


def get(name: str, path: str, field: str, query: Callable[[World], dict[str, Any]]) -> Bad:
    return Bad(name, path, None, 422, field, method="GET", query=query)


WORST_OFFSET_LATE = "9999-12-31T23:59:59.999999-14:00"  # year 10000 in UTC
WORST_OFFSET_EARLY = "0001-01-01T00:00:00+14:00"  # year 0 in UTC
DEEP = 100_000


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


CATALOGUE += [
    # Bodies that are not JSON the API reads: 400, before any field is looked at.
    Bad("nested 100,000 deep", "/api/v1/movements", lambda w: b"[" * DEEP + b"]" * DEEP, 400, None),
    Bad(
        "nested 65 deep",
        "/api/v1/depots",
        lambda w: raw('{"code":' + "[" * 64 + "]" * 64 + "}"),
        400,
        None,
    ),
    Bad("NaN", "/api/v1/depots", lambda w: raw('{"code": NaN, "name": "x"}'), 400, None),
    Bad("Infinity", "/api/v1/movements", lambda w: raw('{"kind": Infinity}'), 400, None),
    Bad("not UTF-8", "/api/v1/depots", lambda w: b'{"code": "D-\xff", "name": "x"}', 400, None),
    # Values no field can mean: 422 naming the field.
    Bad(
        "5,001-digit quantity",
        "/api/v1/movements",
        lambda w: raw(
            json.dumps(lot_receipt(w, 1)).replace('"quantity": 1', '"quantity": ' + "9" * 5001)
        ),
        422,
        "lines",
    ),
    Bad(
        "41-digit year",
        "/api/v1/movements",
        lambda w: raw(
            json.dumps(receipt(w)).replace(
                '"item_type"', '"year_of_manufacture": -' + "1" * 41 + ', "item_type"'
            )
        ),
        422,
        "lines",
    ),
    Bad(
        "year as text",
        "/api/v1/movements",
        lambda w: receipt(w, year_of_manufacture="1990"),
        422,
        "lines",
    ),
    Bad(
        "year beyond floats",
        "/api/v1/movements",
        lambda w: raw(
            json.dumps(receipt(w)).replace(
                '"item_type"', '"year_of_manufacture": 1e999, "item_type"'
            )
        ),
        422,
        "lines",
    ),
    Bad(
        "lone surrogate in a name",
        "/api/v1/depots",
        lambda w: {"code": unique("D"), "name": "\ud800"},
        422,
        "name",
    ),
    Bad(
        "lone surrogate in a serial",
        "/api/v1/movements",
        lambda w: receipt(w, serial="AK\udfff1"),
        422,
        "lines",
    ),
    Bad(
        "lone surrogate in a key",
        "/api/v1/depots",
        lambda w: {"code": unique("D"), "name": "x", "\ud800": 1},
        422,
        "_schema",
    ),
    Bad(
        "NUL in a name",
        "/api/v1/depots",
        lambda w: {"code": unique("D"), "name": "North\x00"},
        422,
        "name",
    ),
    Bad(
        "NUL in a note",
        "/api/v1/movements",
        lambda w: {**receipt(w), "note": "a\x00b"},
        422,
        "note",
    ),
    Bad(
        "NUL in a place",
        "/api/v1/sightings",
        lambda w: {
            "serial": unique("AK"),
            "observed_at": ago(days=1),
            "place": "\x00",
            "circumstances": "x",
        },
        422,
        "place",
    ),
    Bad(
        "occurred_at before 1900 in UTC",
        "/api/v1/movements",
        lambda w: {**receipt(w), "occurred_at": "1900-01-01T00:00:00+14:00"},
        422,
        "occurred_at",
    ),
    Bad(
        "occurred_at in year 1 at +14:00",
        "/api/v1/movements",
        lambda w: {**receipt(w), "occurred_at": WORST_OFFSET_EARLY},
        422,
        "occurred_at",
    ),
    Bad(
        "due_back_at past 9999 in UTC",
        "/api/v1/movements",
        lambda w: issue(w, due_back_at=WORST_OFFSET_LATE),
        422,
        "due_back_at",
    ),
    Bad(
        "due_back_at in year 10000",
        "/api/v1/movements",
        lambda w: issue(w, due_back_at="10000-01-01T00:00:00Z"),
        422,
        "due_back_at",
    ),
    Bad(
        "expected_by past 9999 in UTC",
        "/api/v1/transfers",
        lambda w: transfer(w, expected_by=WORST_OFFSET_LATE),
        422,
        "expected_by",
    ),
    Bad(
        "observed_at in year 1",
        "/api/v1/sightings",
        lambda w: {
            "serial": unique("AK"),
            "observed_at": WORST_OFFSET_EARLY,
            "place": "x",
            "circumstances": "x",
        },
        422,
        "observed_at",
    ),
    Bad("count of 2.9 rounds", open_stocktake, lambda w: counted(w, 2.9), 422, "lines"),
    Bad('count of "7" rounds', open_stocktake, lambda w: counted(w, "7"), 422, "lines"),
    Bad("count of 10**30 rounds", open_stocktake, lambda w: counted(w, 10**30), 422, "lines"),
    Bad(
        "NUL in an Idempotency-Key",
        "/api/v1/depots",
        lambda w: {"code": unique("D"), "name": "x"},
        422,
        "Idempotency-Key",
        headers={"Idempotency-Key": "key\x00"},
    ),
    # Query and path: cursors the API did not give out, dates out of range, NUL, blanks.
    *(
        get(
            f"a forged cursor of {value!r}",
            "/api/v1/weapons",
            "after",
            lambda w, v=value: {"after": cursor_of(v)},
        )
        for value in ({"a": 1}, [1, 2], None, True, 99999999999999999999999999, "not-a-uuid")
    ),
    get("a mangled cursor", "/api/v1/weapons", "after", lambda w: {"after": "%%%not base64%%%"}),
    get(
        "a cursor cut short",
        "/api/v1/weapons",
        "after",
        lambda w: {"after": real_cursor(w, "/api/v1/weapons")[:-6]},
    ),
    get(
        "a cursor of another list",
        "/api/v1/lots",
        "after",
        lambda w: {"after": real_cursor(w, "/api/v1/weapons")},
    ),
    get(
        "a cursor of the other order",
        "/api/v1/movements",
        "after",
        lambda w: {"after": real_cursor(w, "/api/v1/movements"), "order": "desc"},
    ),
    get(
        "a number where a UUID was",
        "/api/v1/weapons",
        "after",
        lambda w: {"after": cursor_of(["/api/v1/weapons", "asc", 5])},
    ),
    get(
        "a UUID where a seq was",
        "/api/v1/audit",
        "after",
        lambda w: {
            "after": cursor_of(["/api/v1/audit", "desc", "8d3f2a5e-6a8b-4a39-9a50-0d1f0e4b7c11"])
        },
    ),
    get(
        "a seq past 64 bits",
        "/api/v1/audit",
        "after",
        lambda w: {"after": cursor_of(["/api/v1/audit", "desc", 2**70])},
    ),
    get(
        "a composite cursor missing a part",
        "/api/v1/alerts",
        "after",
        lambda w: {"after": cursor_of(["/api/v1/alerts", "desc"])},
    ),
    get(
        "a NUL in a text cursor",
        "/api/v1/depots",
        "after",
        lambda w: {"after": cursor_of(["/api/v1/depots", "asc", "D\x00"])},
    ),
    get(
        "a cursor nested 100,000 deep",
        "/api/v1/depots",
        "after",
        lambda w: {"after": base64.urlsafe_b64encode(b"[" * DEEP + b"]" * DEEP).decode()},
    ),
    get("a cursor of 5,000 characters", "/api/v1/depots", "after", lambda w: {"after": "A" * 5000}),
    get(
        "since in year 1 at +14:00",
        "/api/v1/movements",
        "since",
        lambda w: {"since": WORST_OFFSET_EARLY},
    ),
    get("until past 9999", "/api/v1/movements", "until", lambda w: {"until": WORST_OFFSET_LATE}),
    get(
        "as_of past 9999",
        "/api/v1/holdings",
        "as_of",
        lambda w: {"holder": f"depot:{w.depot}", "as_of": WORST_OFFSET_LATE},
    ),
    get(
        "report as_of past 9999",
        "/api/v1/reports/accountability",
        "as_of",
        lambda w: {"as_of": WORST_OFFSET_LATE},
    ),
    get("a 5,001-digit limit", "/api/v1/weapons", "limit", lambda w: {"limit": "9" * 5001}),
    get("limit 0", "/api/v1/weapons", "limit", lambda w: {"limit": 0}),
    get("an unknown order", "/api/v1/audit", "order", lambda w: {"order": "sideways"}),
    get("NUL in a filter", "/api/v1/audit", "actor", lambda w: {"actor": "admin\x00"}),
    get("NUL in a holder filter", "/api/v1/weapons", "holder", lambda w: {"holder": "depot:\x00"}),
    get("a blank trace serial", "/api/v1/trace", "serial", lambda w: {"serial": ""}),
    get("NUL in a path", "/api/v1/depots/D%00X", "code", lambda w: {}),
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
    body = bad.body(world) if bad.body else None
    path = bad.path if isinstance(bad.path, str) else bad.path(world)
    query = bad.query(world) if bad.query else None
    before = counts(app)
    headers = dict(bad.headers or {})
    if isinstance(body, bytes):
        headers["Content-Type"] = "application/json"
        response = world.api.request(bad.method, path, data=body, headers=headers)
    else:
        response = world.api.request(
            bad.method, path, json=body, query_string=query, headers=headers
        )
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


def test_a_filter_refuses_blank_exactly_when_its_schema_says_min_length(world: World) -> None:
    """`?serial=` is refused where the document says minLength 1, and only there: the schema
    and the service agree on what blank means."""
    checked = 0
    for path, operations in served_spec()["paths"].items():
        parameters = operations.get("get", {}).get("parameters", [])
        if "{" in path:
            continue
        for parameter in parameters:
            schema = parameter.get("schema", {})
            if parameter["in"] != "query" or schema.get("type") != "string":
                continue
            if "enum" in schema or "format" in schema or parameter["name"] == "after":
                continue
            others = {
                p["name"]: f"depot:{world.depot}" if p["name"] == "holder" else "X"
                for p in parameters
                if p.get("required") and p["name"] != parameter["name"]
            }
            query = {**others, parameter["name"]: ""}
            response = world.api.get(path, query_string=query)
            refused = response.status_code == 422 and parameter["name"] in (
                response.get_json().get("errors") or {}
            )
            says = schema.get("minLength", 0) >= 1
            assert refused == says, (path, parameter["name"], response.get_json())
            checked += 1
    assert checked >= 10
