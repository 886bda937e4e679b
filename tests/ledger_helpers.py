"""Builders for ledger tests: a small world of depots, a unit, a supplier and item types."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

from .conftest import Api, unique


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


@dataclass
class World:
    api: Api
    depot: str
    other_depot: str
    unit: str
    supplier: str
    rifle: str
    ammo: str
    maker: str

    def receive(self, serials: list[str], lots: dict[str, int] | None = None, **extra: Any) -> Any:
        lines: list[dict[str, Any]] = [
            {"weapon": {"serial": s, "manufacturer": self.maker, "item_type": self.rifle}}
            for s in serials
        ]
        lines += [
            {"lot": {"lot_number": n, "item_type": self.ammo}, "quantity": q}
            for n, q in (lots or {}).items()
        ]
        body = {
            "kind": "receipt",
            "from": f"party:{self.supplier}",
            "to": f"depot:{self.depot}",
            "occurred_at": ago(hours=1),
            "document_ref": unique("GRN"),
            "lines": lines,
            **extra,
        }
        return self.api.post("/api/v1/movements", json=body)

    def issue(self, serials: list[str], token: str | None = None, **extra: Any) -> Any:
        body = {
            "kind": "issue",
            "from": f"depot:{self.depot}",
            "to": f"unit:{self.unit}",
            "occurred_at": ago(minutes=30),
            "due_back_at": ago(days=-30),
            "lines": [{"serial": s} for s in serials],
            **extra,
        }
        return self.api.post("/api/v1/movements", json=body, token=token)

    def weapon(self, serial: str) -> dict[str, Any]:
        items = self.api.get("/api/v1/weapons", query_string={"serial": serial}).get_json()["items"]
        assert len(items) == 1, items
        return dict(items[0])

    def balances(self, lot_number: str) -> dict[str, int]:
        lot = self.api.get("/api/v1/lots", query_string={"lot_number": lot_number}).get_json()
        detail = self.api.get(f"/api/v1/lots/{lot['items'][0]['id']}").get_json()
        return {b["holder"]: b["quantity"] for b in detail["balances"]}


def make_world(api: Api) -> World:
    depot, other, unit, supplier = unique("D"), unique("D"), unique("U"), unique("SUP")
    rifle, ammo = unique("AKM"), unique("762X39")
    for code in (depot, other):
        assert api.post("/api/v1/depots", json={"code": code, "name": code}).status_code == 201
    assert (
        api.post("/api/v1/units", json={"code": unit, "name": "3 Bde", "depot": depot}).status_code
        == 201
    )
    assert (
        api.post(
            "/api/v1/parties",
            json={"code": supplier, "name": "Arsenal", "country": "XX", "kind": "supplier"},
        ).status_code
        == 201
    )
    assert (
        api.post(
            "/api/v1/item-types",
            json={"code": rifle, "category": "weapon", "name": "AKM rifle", "calibre": "7.62x39"},
        ).status_code
        == 201
    )
    assert (
        api.post(
            "/api/v1/item-types",
            json={"code": ammo, "category": "ammunition", "name": "7.62x39 ball"},
        ).status_code
        == 201
    )
    return World(api, depot, other, unit, supplier, rifle, ammo, unique("ARSENAL"))


def wait_until_blocked_on_locks(engine: Engine, transactions: int, what: str) -> None:
    """Return once `transactions` transactions of the test database wait for a lock; fail
    saying `what` never waited after 30 s."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            waiting = conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            )
        if waiting >= transactions:
            return
        time.sleep(0.02)
    raise AssertionError(f"{what} never waited for a lock")
