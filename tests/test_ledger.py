"""The custody ledger over HTTP, on both databases."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DatabaseError

from inventory.db.engine import make_engine, make_session_factory
from inventory.services import projection

from .conftest import Api, unique
from .ledger_helpers import World, ago, make_world, wait_until_blocked_on_locks
from .test_foundation import assert_problem


@pytest.fixture
def world(api: Api) -> World:
    return make_world(api)


def test_receipt_registers_weapons_and_lots(world: World) -> None:
    serial, lot = unique("AK"), unique("LOT")
    response = world.receive([serial], {lot: 12_000})
    assert response.status_code == 201, response.get_json()
    posted = response.get_json()
    assert posted["kind"] == "receipt" and posted["to"] == f"depot:{world.depot}"
    assert posted["audit_seq"] > 0 and len(posted["lines"]) == 2
    assert posted["lines"][0]["serial"] == serial and posted["lines"][0]["weapon_id"]
    weapon = world.weapon(serial)
    assert weapon["holder"] == f"depot:{world.depot}" and weapon["status"] == "in_store"
    assert weapon["origin"] == "procured" and weapon["item_type"] == world.rifle
    assert world.balances(lot) == {f"depot:{world.depot}": 12_000}


def test_issue_return_and_chain_of_custody(world: World) -> None:
    serial = unique("AK")
    world.receive([serial])
    issued = world.issue([serial])
    assert issued.status_code == 201, issued.get_json()
    assert world.weapon(serial)["status"] == "issued"
    returned = world.api.post(
        "/api/v1/movements",
        json={
            "kind": "return",
            "from": f"unit:{world.unit}",
            "to": f"depot:{world.depot}",
            "occurred_at": ago(minutes=5),
            "lines": [{"serial": serial}],
        },
    )
    assert returned.status_code == 201
    weapon = world.weapon(serial)
    history = world.api.get(f"/api/v1/weapons/{weapon['id']}/history").get_json()["items"]
    assert [step["kind"] for step in history] == ["receipt", "issue", "return"]
    assert history[1]["from"] == f"depot:{world.depot}" and history[1]["to"] == f"unit:{world.unit}"


def test_issue_needs_due_back_at(world: World) -> None:
    serial = unique("AK")
    world.receive([serial])
    body = assert_problem(world.issue([serial], due_back_at=None), 422)
    assert "due_back_at" in body["errors"]


def test_a_weapon_moves_only_from_the_holder_that_has_it(world: World) -> None:
    serial = unique("AK")
    world.receive([serial])
    assert world.issue([serial]).status_code == 201
    body = assert_problem(world.issue([serial]), 409)
    expected = (
        f"weapon {world.rifle} {world.maker} {serial} is held by unit:{world.unit}, "
        f"not depot:{world.depot}"
    )
    assert body["errors"]["lines[0]"] == [expected]
    assert expected in body["detail"]


def test_duplicate_serial_is_a_conflict(world: World) -> None:
    serial = unique("AK")
    assert world.receive([serial]).status_code == 201
    body = assert_problem(world.receive([serial]), 409)
    assert serial in body["detail"] and "already registered" in body["detail"]


def test_serials_are_normalised_and_control_characters_refused(world: World) -> None:
    serial = unique("AK")
    assert world.receive([f"  {serial.lower()} "]).status_code == 201
    assert world.weapon(serial)["serial"] == serial
    body = assert_problem(world.receive([f"{serial}\u200b"]), 422)
    assert "invisible" in str(body["errors"])


def test_obliterated_serial_gets_a_registry_serial(world: World) -> None:
    response = world.api.post(
        "/api/v1/movements",
        json={
            "kind": "receipt",
            "from": f"party:{world.supplier}",
            "to": f"depot:{world.depot}",
            "occurred_at": ago(hours=1),
            "lines": [
                {
                    "weapon": {
                        "manufacturer": world.maker,
                        "item_type": world.rifle,
                        "marking_status": "obliterated",
                    }
                }
            ],
        },
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["lines"][0]["serial"].startswith("REG-")
    missing = world.api.post(
        "/api/v1/movements",
        json={
            "kind": "receipt",
            "from": f"party:{world.supplier}",
            "to": f"depot:{world.depot}",
            "occurred_at": ago(hours=1),
            "lines": [{"weapon": {"manufacturer": world.maker, "item_type": world.rifle}}],
        },
    )
    body = assert_problem(missing, 422)
    assert "serial" in str(body["errors"])


def test_quantities_never_go_negative(world: World) -> None:
    lot = unique("LOT")
    world.receive([], {lot: 100})
    over = {
        "kind": "expenditure",
        "from": f"depot:{world.depot}",
        "occurred_at": ago(minutes=1),
        "reason": "range practice",
        "lines": [{"lot_number": lot, "quantity": 101}],
    }
    body = assert_problem(world.api.post("/api/v1/movements", json=over), 409)
    assert f"depot:{world.depot} holds 100 rounds" in body["detail"]
    over["lines"] = [{"lot_number": lot, "quantity": 40}]
    assert world.api.post("/api/v1/movements", json=over).status_code == 201
    assert world.balances(lot) == {f"depot:{world.depot}": 60, "expended:EXPENDED": 40}
    for bad in (0, -5):
        over["lines"] = [{"lot_number": lot, "quantity": bad}]
        assert_problem(world.api.post("/api/v1/movements", json=over), 422)


def test_expenditure_is_for_ammunition_only(world: World) -> None:
    serial = unique("AK")
    world.receive([serial])
    body = assert_problem(
        world.api.post(
            "/api/v1/movements",
            json={
                "kind": "expenditure",
                "from": f"depot:{world.depot}",
                "occurred_at": ago(minutes=1),
                "reason": "x",
                "lines": [{"serial": serial}],
            },
        ),
        422,
    )
    assert "ammunition only" in body["detail"]


def test_loss_recovery_and_destruction(world: World) -> None:
    lost, scrap = unique("AK"), unique("AK")
    world.receive([lost, scrap])
    assert_problem(
        world.api.post(
            "/api/v1/movements",
            json={
                "kind": "loss",
                "from": f"depot:{world.depot}",
                "occurred_at": ago(minutes=9),
                "lines": [{"serial": lost}],
            },
        ),
        422,
    )  # no case_ref
    assert (
        world.api.post(
            "/api/v1/movements",
            json={
                "kind": "loss",
                "from": f"depot:{world.depot}",
                "occurred_at": ago(minutes=9),
                "case_ref": "CASE-1",
                "lines": [{"serial": lost}],
            },
        ).status_code
        == 201
    )
    assert world.weapon(lost)["status"] == "lost"
    assert (
        world.api.post(
            "/api/v1/movements",
            json={
                "kind": "recovery",
                "from": "lost",
                "to": f"depot:{world.depot}",
                "occurred_at": ago(minutes=5),
                "case_ref": "CASE-1",  # it settles the open reported loss
                "lines": [{"serial": lost}],
            },
        ).status_code
        == 201
    )
    assert world.weapon(lost)["status"] == "in_store"
    assert (
        world.api.post(
            "/api/v1/movements",
            json={
                "kind": "destruction",
                "from": f"depot:{world.depot}",
                "occurred_at": ago(minutes=1),
                "certificate_ref": "DEST-9",
                "lines": [{"serial": scrap}],
            },
        ).status_code
        == 201
    )
    assert world.weapon(scrap)["status"] == "destroyed"


def test_recovery_registers_a_never_registered_weapon(world: World) -> None:
    serial = unique("CAP")
    response = world.api.post(
        "/api/v1/movements",
        json={
            "kind": "recovery",
            "from": f"party:{world.supplier}",
            "to": f"depot:{world.depot}",
            "occurred_at": ago(hours=2),
            "lines": [
                {
                    "weapon": {
                        "serial": serial,
                        "manufacturer": world.maker,
                        "item_type": world.rifle,
                        "origin": "captured",
                    }
                }
            ],
        },
    )
    assert response.status_code == 201, response.get_json()
    assert world.weapon(serial)["origin"] == "captured"


def test_reversal_mirrors_and_happens_once(world: World) -> None:
    serial, lot = unique("AK"), unique("LOT")
    world.receive([serial], {lot: 500})
    issue = world.api.post(
        "/api/v1/movements",
        json={
            "kind": "issue",
            "from": f"depot:{world.depot}",
            "to": f"unit:{world.unit}",
            "occurred_at": ago(minutes=30),
            "due_back_at": ago(days=-1),
            "lines": [{"serial": serial}, {"lot_number": lot, "quantity": 120}],
        },
    ).get_json()
    reversal = {
        "kind": "reversal",
        "reverses": issue["id"],
        "reason": "issued to the wrong unit",
        "occurred_at": ago(minutes=1),
    }
    response = world.api.post("/api/v1/movements", json=reversal)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["from"] == f"unit:{world.unit}"
    assert world.weapon(serial)["holder"] == f"depot:{world.depot}"
    assert world.balances(lot) == {f"depot:{world.depot}": 500}
    body = assert_problem(world.api.post("/api/v1/movements", json=reversal), 409)
    assert "already reversed" in body["detail"]


def test_times_must_be_aware_and_not_in_the_future(world: World) -> None:
    serial = unique("AK")
    naive = world.receive([serial], occurred_at="2026-11-20T09:00:00")
    assert "occurred_at" in assert_problem(naive, 422)["errors"]
    future = world.receive([serial], occurred_at="2999-01-01T00:00:00+00:00")
    assert "occurred_at" in assert_problem(future, 422)["errors"]
    late = world.receive([serial], occurred_at=ago(days=10))
    assert late.status_code == 201 and late.get_json()["late_entry"] is True


def test_clerks_post_only_for_their_depots(world: World) -> None:
    serial = unique("AK")
    world.receive([serial])
    outsider = world.api.token_for("clerk", [world.other_depot])
    body = assert_problem(world.issue([serial], token=outsider), 403)
    assert world.depot in body["detail"]
    auditor = world.api.token_for("auditor")
    assert_problem(world.issue([serial], token=auditor), 403)
    insider = world.api.token_for("clerk", [world.depot])
    assert world.issue([serial], token=insider).status_code == 201


def test_clerks_do_not_see_other_depots_stock(world: World) -> None:
    serial = unique("AK")
    world.receive([serial])
    weapon = world.weapon(serial)
    outsider = world.api.token_for("clerk", [world.other_depot])
    assert_problem(world.api.get(f"/api/v1/weapons/{weapon['id']}", token=outsider), 404)
    found = world.api.get("/api/v1/weapons", query_string={"serial": serial}, token=outsider)
    assert found.get_json()["items"] == []
    assert_problem(
        world.api.get(
            "/api/v1/holdings", query_string={"holder": f"depot:{world.depot}"}, token=outsider
        ),
        403,
    )


def test_idempotent_retry_posts_nothing_twice(world: World) -> None:
    serial = unique("AK")
    headers = {"Idempotency-Key": unique("retry")}
    body = {
        "kind": "receipt",
        "from": f"party:{world.supplier}",
        "to": f"depot:{world.depot}",
        "occurred_at": ago(hours=1),
        "lines": [
            {"weapon": {"serial": serial, "manufacturer": world.maker, "item_type": world.rifle}}
        ],
    }
    first = world.api.post("/api/v1/movements", json=body, headers=headers)
    second = world.api.post("/api/v1/movements", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.get_json() == second.get_json()
    receipts = world.api.get(
        "/api/v1/movements", query_string={"holder": f"depot:{world.depot}", "kind": "receipt"}
    ).get_json()["items"]
    assert len(receipts) == 1


def test_holdings_as_of_reproduce_the_past(world: World) -> None:
    first, second, lot = unique("AK"), unique("AK"), unique("LOT")
    world.receive([first, second], {lot: 1000})
    before = datetime.now(UTC).isoformat()
    world.issue([first])
    world.api.post(
        "/api/v1/movements",
        json={
            "kind": "expenditure",
            "from": f"depot:{world.depot}",
            "occurred_at": ago(seconds=1),
            "reason": "training",
            "lines": [{"lot_number": lot, "quantity": 250}],
        },
    )
    holder = {"holder": f"depot:{world.depot}"}
    now = world.api.get("/api/v1/holdings", query_string=holder).get_json()
    then = world.api.get("/api/v1/holdings", query_string={**holder, "as_of": before}).get_json()
    assert {w["serial"] for w in now["weapons"]} == {second}
    assert {w["serial"] for w in then["weapons"]} == {first, second}
    assert [lq["quantity"] for lq in now["lots"]] == [750]
    assert [lq["quantity"] for lq in then["lots"]] == [1000]
    current = world.api.get(
        "/api/v1/holdings", query_string={**holder, "as_of": datetime.now(UTC).isoformat()}
    ).get_json()
    assert {w["serial"] for w in current["weapons"]} == {second}
    assert current["lots"] == now["lots"]


def test_a_bad_line_in_ten_thousand_posts_nothing(world: World) -> None:
    serials = [f"{unique('BULK')}-{i:05d}" for i in range(10_000)]
    lines: list[dict[str, Any]] = [
        {"weapon": {"serial": s, "manufacturer": world.maker, "item_type": world.rifle}}
        for s in serials
    ]
    lines[7_321]["weapon"]["item_type"] = "NO-SUCH-TYPE"
    body = {
        "kind": "receipt",
        "from": f"party:{world.supplier}",
        "to": f"depot:{world.depot}",
        "occurred_at": ago(hours=1),
        "lines": lines,
    }
    problem = assert_problem(world.api.post("/api/v1/movements", json=body), 422)
    assert list(problem["errors"]) == ["lines[7321]"] and "NO-SUCH-TYPE" in problem["detail"]
    assert (
        world.api.get("/api/v1/weapons", query_string={"serial": serials[0]}).get_json()["items"]
        == []
    )
    lines[7_321]["weapon"]["item_type"] = world.rifle
    response = world.api.post("/api/v1/movements", json=body)
    assert response.status_code == 201 and len(response.get_json()["lines"]) == 10_000


def test_movements_lines_and_the_registry_cannot_be_changed_in_the_database(
    world: World, database_url: str
) -> None:
    world.receive([unique("AK")], {unique("LOT"): 100})
    engine = create_engine(database_url)
    try:
        for statement in (
            "UPDATE movements SET actor = 'forger'",
            "DELETE FROM movements",
            "UPDATE movement_lines SET quantity = 2",
            "DELETE FROM movement_lines",
            "UPDATE weapons SET serial = 'FILED-OFF'",
            "DELETE FROM weapons",
            "UPDATE lots SET lot_number = 'RELABELLED'",
            "DELETE FROM lots",
        ):
            with engine.connect() as conn, pytest.raises(DatabaseError, match="append-only"):
                conn.execute(text(statement))
    finally:
        engine.dispose()


def test_projection_agrees_with_the_ledger(world: World, database_url: str) -> None:
    serial, lot = unique("AK"), unique("LOT")
    world.receive([serial], {lot: 300})
    world.issue([serial])
    engine = make_engine(database_url)
    session = make_session_factory(engine)()
    try:
        assert projection.check(session) == []
    finally:
        session.close()
        engine.dispose()


def test_a_loss_and_a_late_entry_open_discrepancies(world: World, database_url: str) -> None:
    serial = unique("AK")
    world.receive([serial], occurred_at=ago(days=5))
    loss = world.api.post(
        "/api/v1/movements",
        json={
            "kind": "loss",
            "from": f"depot:{world.depot}",
            "occurred_at": ago(minutes=9),
            "case_ref": "CASE-77",
            "lines": [{"serial": serial}],
        },
    )
    assert loss.status_code == 201
    weapon_id = world.weapon(serial)["id"]
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT d.kind, d.severity, d.status, d.summary FROM discrepancies d "
                    "JOIN holders h ON h.id = d.depot_id WHERE h.code = :depot ORDER BY d.seq"
                ),
                {"depot": world.depot},
            ).all()
            events = conn.execute(
                text(
                    "SELECT count(*) FROM outbox_events WHERE type = 'discrepancy.opened' "
                    "AND depot = :depot"
                ),
                {"depot": world.depot},
            ).scalar()
    finally:
        engine.dispose()
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("late_entry", "low", "open"),
        ("reported_loss", "critical", "open"),
    ]
    assert "CASE-77" in rows[1][3] and serial in rows[1][3]
    assert events == 2 and weapon_id


def test_a_clerk_reads_only_their_depots_part_of_a_lots_history(world: World) -> None:
    lot = unique("LOT")
    world.receive([], {lot: 300})
    world.api.post(
        "/api/v1/movements",
        json={
            "kind": "issue",
            "from": f"depot:{world.depot}",
            "to": f"unit:{world.unit}",
            "occurred_at": ago(minutes=5),
            "due_back_at": ago(days=-3),
            "lines": [{"lot_number": lot, "quantity": 100}],
        },
    )
    lot_id = world.api.get("/api/v1/lots", query_string={"lot_number": lot}).get_json()
    path = f"/api/v1/lots/{lot_id['items'][0]['id']}/history"
    insider = world.api.token_for("clerk", [world.depot])
    outsider = world.api.token_for("clerk", [world.other_depot])
    kinds = [step["kind"] for step in world.api.get(path, token=insider).get_json()["items"]]
    assert kinds == ["receipt", "issue"]
    assert world.api.get(path, token=outsider).get_json()["items"] == []


def test_a_movement_takes_its_seq_only_after_the_locks_it_waits_for(
    world: World, backend: str, database_url: str
) -> None:
    """Seq order must be the order movements took effect: histories, `as_of` and `ledger rebuild`
    replay by seq. A movement that took its seq and then waited for a weapon could otherwise be
    overtaken by one that moved the weapon first and committed with a later seq."""
    if backend != "postgresql":
        pytest.skip("SQLite lets one writer in at a time: nothing interleaves")
    serial = unique("AK")
    assert world.receive([serial]).status_code == 201
    weapon_id = world.weapon(serial)["id"]
    engine = create_engine(database_url)
    replies: list[Any] = []
    try:
        with engine.connect() as holder:  # another transaction holds the weapon's row
            holder.execute(
                text("SELECT 1 FROM weapon_holdings WHERE weapon_id = :w FOR UPDATE"),
                {"w": weapon_id},
            )
            before = _last_movement_seq(engine)
            issuing = threading.Thread(target=lambda: replies.append(world.issue([serial])))
            issuing.start()
            wait_until_blocked_on_locks(engine, 1, "the movement")
            assert _last_movement_seq(engine) == before  # waiting, it has taken no seq
            holder.rollback()
            issuing.join(30)
    finally:
        engine.dispose()
    assert replies[0].status_code == 201, replies[0].get_json()


def _last_movement_seq(engine: Engine) -> int:
    with engine.connect() as conn:
        name = conn.scalar(text("SELECT pg_get_serial_sequence('movements', 'seq')"))
        return int(conn.scalar(text(f"SELECT last_value FROM {name}")) or 0)
