"""Ledger invariants under random sequences of movements and under concurrent clients."""

from __future__ import annotations

import random
import threading
from collections import Counter
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from inventory.db.engine import make_engine, make_session_factory
from inventory.db.models import Lot, LotHolding
from inventory.services import audit_log, projection

from .conftest import Api, unique
from .ledger_helpers import World, ago, make_world


@pytest.fixture
def world(api: Api) -> World:
    return make_world(api)


def _post(world: World, body: dict[str, Any]) -> int:
    return int(world.api.post("/api/v1/movements", json=body).status_code)


def test_random_movements_conserve_stock(world: World, database_url: str) -> None:
    """A model of who holds what predicts every reply; the books must agree at the end."""
    rng = random.Random(20261128)
    depot, unit = f"depot:{world.depot}", f"unit:{world.unit}"
    where: dict[str, str] = {}  # serial -> holder
    rounds: Counter[tuple[str, str]] = Counter()  # (lot, holder) -> quantity
    received: Counter[str] = Counter()
    lots = [unique("LOT") for _ in range(3)]
    for step in range(120):
        action = rng.choice(["receipt", "issue", "return", "expend", "loss", "overdraw"])
        if action == "receipt" or not where:
            serials = [unique("R") for _ in range(rng.randint(1, 4))]
            lot, quantity = rng.choice(lots), rng.randint(1, 500)
            assert world.receive(serials, {lot: quantity}).status_code == 201
            where.update(dict.fromkeys(serials, depot))
            rounds[(lot, depot)] += quantity
            received[lot] += quantity
            continue
        serial = rng.choice(sorted(where))
        if action in ("issue", "return"):
            source, destination = (depot, unit) if action == "issue" else (unit, depot)
            body = {
                "kind": action,
                "from": source,
                "to": destination,
                "occurred_at": ago(seconds=1),
                "lines": [{"serial": serial}],
            }
            if action == "issue":
                body["due_back_at"] = ago(days=-7)
            expected = 201 if where[serial] == source else 409
            assert _post(world, body) == expected, (step, action, serial, where[serial])
            if expected == 201:
                where[serial] = destination
        elif action == "loss":
            holder = where[serial]
            status = _post(
                world,
                {
                    "kind": "loss",
                    "from": holder,
                    "occurred_at": ago(seconds=1),
                    "case_ref": f"C-{step}",
                    "lines": [{"serial": serial}],
                },
            )
            assert status == (201 if holder in (depot, unit) else 422)
            if status == 201:
                where[serial] = "lost:LOST"
        else:
            lot = rng.choice(lots)
            held = rounds[(lot, depot)]
            quantity = held + 1 if action == "overdraw" else rng.randint(1, max(1, held))
            if held == 0 and action == "expend":
                continue
            status = _post(
                world,
                {
                    "kind": "expenditure",
                    "from": depot,
                    "reason": "training",
                    "occurred_at": ago(seconds=1),
                    "lines": [{"lot_number": lot, "quantity": quantity}],
                },
            )
            if rounds[(lot, depot)] >= quantity:
                assert status == 201
                rounds[(lot, depot)] -= quantity
                rounds[(lot, "expended:EXPENDED")] += quantity
            else:
                assert status in (409, 422)  # 422 when the lot was never received

    for serial, holder in where.items():
        assert world.weapon(serial)["holder"] == holder
    engine = make_engine(database_url)
    session = make_session_factory(engine)()
    try:
        for lot in lots:
            total = session.scalar(
                select(func.coalesce(func.sum(LotHolding.quantity), 0))
                .join(Lot, Lot.id == LotHolding.lot_id)
                .where(Lot.lot_number == lot)
            )
            assert total == received[lot], lot
        assert projection.check(session) == []
        assert audit_log.verify(session).ok
    finally:
        session.close()
        engine.dispose()


def test_one_weapon_issued_twice_at_once_succeeds_once(app: Flask, world: World) -> None:
    serials = [unique("RACE") for _ in range(4)]
    assert world.receive(serials).status_code == 201
    for serial in serials:
        barrier = threading.Barrier(2)
        statuses: list[int] = []

        def issue(
            serial: str = serial,
            barrier: threading.Barrier = barrier,
            statuses: list[int] = statuses,
        ) -> None:
            client = Api(app.test_client(), world.api.token)
            barrier.wait()
            statuses.append(
                client.post(
                    "/api/v1/movements",
                    json={
                        "kind": "issue",
                        "from": f"depot:{world.depot}",
                        "to": f"unit:{world.unit}",
                        "occurred_at": ago(seconds=1),
                        "due_back_at": ago(days=-1),
                        "lines": [{"serial": serial}],
                    },
                ).status_code
            )

        threads = [threading.Thread(target=issue) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses) == [201, 409], (serial, statuses)
        history = world.api.get(f"/api/v1/weapons/{world.weapon(serial)['id']}/history")
        assert [step["kind"] for step in history.get_json()["items"]] == ["receipt", "issue"]


def test_concurrent_lot_withdrawals_never_overdraw(app: Flask, world: World) -> None:
    lot = unique("LOT")
    assert world.receive([], {lot: 1000}).status_code == 201
    statuses: list[int] = []
    barrier = threading.Barrier(8)

    def expend() -> None:
        client = Api(app.test_client(), world.api.token)
        barrier.wait()
        for _ in range(3):
            statuses.append(
                client.post(
                    "/api/v1/movements",
                    json={
                        "kind": "expenditure",
                        "from": f"depot:{world.depot}",
                        "reason": "drill",
                        "occurred_at": ago(seconds=1),
                        "lines": [{"lot_number": lot, "quantity": 50}],
                    },
                ).status_code
            )

    threads = [threading.Thread(target=expend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(statuses) == {201: 20, 409: 4}
    assert world.balances(lot) == {"expended:EXPENDED": 1000}
