"""Accountability over HTTP, on both databases: one test per way the books could change hands
unseen (issue 14), each now refused or made visible by the policy and the database."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import create_engine, event, select, text

from inventory import create_app
from inventory.cli import main
from inventory.db.append_only import app_role
from inventory.db.models import OutboxEvent
from inventory.domain.actors import operator
from inventory.services import tokens
from inventory.services.unit_of_work import Context, run_write

from .conftest import Api, make_settings, unique
from .ledger_helpers import World, ago, make_world
from .test_audit_db import database_with_app_role, refusal  # noqa: F401  (a fixture)
from .test_foundation import assert_problem


@dataclasses.dataclass
class TwoDepots:
    """Depot A (`world.depot`, with unit `world.unit`) and depot B (`world.other_depot`, with
    unit `unit_b`), a clerk of each."""

    world: World
    unit_b: str
    clerk_a: str
    clerk_b: str

    @property
    def api(self) -> Api:
        return self.world.api

    def fresh_weapon(self) -> tuple[str, str]:
        serial = unique("RM77")
        receipt = self.world.receive([serial])
        assert receipt.status_code == 201, receipt.get_json()
        return serial, receipt.get_json()["lines"][0]["weapon_id"]

    def post(self, token: str | None = None, **body: Any) -> Any:
        return self.api.post(
            "/api/v1/movements", json={"occurred_at": ago(minutes=5), **body}, token=token
        )

    def discrepancies(self, token: str, **query: Any) -> list[dict[str, Any]]:
        page = self.api.get(
            "/api/v1/discrepancies", query_string={"limit": 500, **query}, token=token
        )
        assert page.status_code == 200, page.get_json()
        return list(page.get_json()["items"])


@pytest.fixture
def depots(api: Api) -> TwoDepots:
    world = make_world(api)
    unit_b = unique("U")
    made = api.post(
        "/api/v1/units", json={"code": unit_b, "name": "2 Bde", "depot": world.other_depot}
    )
    assert made.status_code == 201, made.get_json()
    return TwoDepots(
        world,
        unit_b,
        api.token_for("clerk", [world.depot]),
        api.token_for("clerk", [world.other_depot]),
    )


def outbox(app: Flask, event_type: str, mentioning: str) -> list[dict[str, Any]]:
    session = app.extensions["inventory.sessions"]()
    try:
        rows = session.scalars(select(OutboxEvent).where(OutboxEvent.type == event_type))
        return [
            {"type": row.type, "depot": row.depot, "payload": row.payload}
            for row in rows
            if mentioning in row.payload
        ]
    finally:
        session.close()


def test_a_clerk_takes_in_another_depots_issued_weapon_only_with_a_document_and_openly(
    depots: TwoDepots, app: Flask
) -> None:
    world = depots.world
    serial, weapon_id = depots.fresh_weapon()
    assert world.issue([serial], token=depots.clerk_a).status_code == 201
    hand_in = {
        "kind": "return",
        "from": f"unit:{world.unit}",
        "to": f"depot:{world.other_depot}",
        "lines": [{"serial": serial}],
    }
    refused = assert_problem(depots.post(depots.clerk_b, **hand_in), 422)
    assert "document_ref" in refused["errors"]
    returned = depots.post(depots.clerk_b, **hand_in, document_ref="HAND-IN-7")
    assert returned.status_code == 201, returned.get_json()
    movement = returned.get_json()["id"]

    # Depot A's clerk sees at once that its books no longer hold the rifle, and where it went.
    [opened] = [
        d
        for d in depots.discrepancies(depots.clerk_a, kind="returned_elsewhere")
        if d["subject"].get("movement_id") == movement
    ]
    assert opened["depot"] == world.depot and opened["status"] == "open"
    assert world.depot in opened["summary"] and world.other_depot in opened["summary"]
    assert opened["subject"]["weapon_id"] == weapon_id
    # Monitors are alerted.
    [alert] = outbox(app, "discrepancy.opened", str(opened["id"]))
    assert alert["depot"] == world.depot and "returned_elsewhere" in alert["payload"]


def test_a_clerk_recovers_another_depots_lost_weapon_only_with_its_case_and_the_loss_follows(
    depots: TwoDepots, app: Flask
) -> None:
    world = depots.world
    serial, weapon_id = depots.fresh_weapon()
    lost = depots.post(
        depots.clerk_a,
        kind="loss",
        **{"from": f"depot:{world.depot}"},
        case_ref="THEFT-1",
        lines=[{"serial": serial}],
    )
    assert lost.status_code == 201, lost.get_json()
    [loss] = [
        d
        for d in depots.discrepancies(depots.clerk_a, kind="reported_loss")
        if d["subject"].get("weapon_id") == weapon_id
    ]
    recovery = {
        "kind": "recovery",
        "from": "lost",
        "to": f"depot:{world.other_depot}",
        "lines": [{"serial": serial}],
    }
    assert "document_ref" in assert_problem(depots.post(depots.clerk_b, **recovery), 422)["errors"]
    no_case = depots.post(depots.clerk_b, **recovery, document_ref="POLICE-HANDOVER-3")
    assert "case_ref" in assert_problem(no_case, 422)["errors"]
    recovered = depots.post(
        depots.clerk_b, **recovery, document_ref="POLICE-HANDOVER-3", case_ref="THEFT-1"
    )
    assert recovered.status_code == 201, recovered.get_json()
    movement = recovered.get_json()["id"]

    detail = world.api.get(f"/api/v1/discrepancies/{loss['id']}", token=depots.clerk_a).get_json()
    assert detail["status"] == "investigating"  # a person resolves it, not the recovery
    assert detail["events"][-1]["movement_id"] == movement
    [elsewhere] = [
        d
        for d in depots.discrepancies(depots.clerk_a, kind="recovered_elsewhere")
        if d["subject"].get("movement_id") == movement
    ]
    assert elsewhere["depot"] == world.depot and world.other_depot in elsewhere["summary"]
    [published] = outbox(app, "weapon.recovered", movement)
    assert weapon_id in published["payload"] and world.depot in published["payload"]


def test_a_refusal_never_says_where_a_weapon_outside_the_clerks_depots_is(
    depots: TwoDepots,
) -> None:
    world = depots.world
    _, theirs = depots.fresh_weapon()  # in depot A
    nobodys = "00000000-0000-4000-8000-000000000001"
    answers = []
    for weapon_id in (theirs, nobodys):
        response = depots.post(
            depots.clerk_b,
            kind="issue",
            **{"from": f"depot:{world.other_depot}", "to": f"unit:{depots.unit_b}"},
            due_back_at=ago(days=-3),
            lines=[{"weapon_id": weapon_id}],
        )
        body = assert_problem(response, 422)
        answers.append(json.dumps([body["detail"], body["errors"]]).replace(weapon_id, "<id>"))
        assert world.depot not in str(body)
    assert answers[0] == answers[1]
    # The weapon page says the same: nothing.
    assert_problem(world.api.get(f"/api/v1/weapons/{theirs}", token=depots.clerk_b), 404)


def test_a_monitor_sees_and_switches_off_only_its_own_subscriptions(api: Api, app: Flask) -> None:
    mine, theirs = api.token_for("monitor"), api.token_for("monitor")
    secret_url = f"https://93.184.215.14/SECRET-PATH-TOKEN-{unique()}"
    body = {"url": secret_url, "events": ["discrepancy.opened"]}
    made = api.post("/api/v1/subscriptions", json=body, token=theirs)
    assert made.status_code == 201, made.get_json()
    sid = made.get_json()["id"]

    listed = api.get("/api/v1/subscriptions", query_string={"limit": 1000}, token=mine)
    assert secret_url not in listed.get_data(as_text=True)
    for method, path in (
        ("GET", f"/api/v1/subscriptions/{sid}"),
        ("GET", f"/api/v1/subscriptions/{sid}/deliveries"),
        ("DELETE", f"/api/v1/subscriptions/{sid}"),
    ):
        assert_problem(api.request(method, path, token=mine), 404)
    # Its owner and admins see it; the same URL for the same events twice is a conflict.
    assert api.get(f"/api/v1/subscriptions/{sid}", token=theirs).status_code == 200
    assert api.get(f"/api/v1/subscriptions/{sid}").status_code == 200
    assert_problem(api.post("/api/v1/subscriptions", json=body, token=theirs), 409)
    assert api.delete(f"/api/v1/subscriptions/{sid}", token=theirs).status_code == 200

    # Each monitor's token holds a bounded number of active subscriptions.
    settings = app.extensions["inventory.settings"]
    app.extensions["inventory.settings"] = dataclasses.replace(settings, subscriptions_per_token=2)
    try:
        for n in range(2):
            hook = {"url": f"{secret_url}/{n}", "events": ["discrepancy.opened"]}
            assert api.post("/api/v1/subscriptions", json=hook, token=mine).status_code == 201
        third = {"url": f"{secret_url}/3", "events": ["discrepancy.opened"]}
        capped = assert_problem(api.post("/api/v1/subscriptions", json=third, token=mine), 409)
        assert "INVENTORY_SUBSCRIPTIONS_PER_TOKEN" in capped["detail"]
    finally:
        app.extensions["inventory.settings"] = settings


def audit_records(api: Api, subject: str) -> list[dict[str, Any]]:
    auditor = api.token_for("auditor")
    page = api.get("/api/v1/audit", query_string={"subject": subject}, token=auditor)
    return list(page.get_json()["items"])


def test_the_audit_log_names_the_credential_and_the_servers_request_id(api: Api) -> None:
    name = unique("demo clerk")
    depot = unique("D")
    assert api.post("/api/v1/depots", json={"code": depot, "name": depot}).status_code == 201
    first = api.post("/api/v1/tokens", json={"name": name, "role": "clerk", "depots": [depot]})
    assert first.status_code == 201
    # A second live token may not pass itself off under the same name.
    again = {"name": name, "role": "clerk", "depots": [depot]}
    assert_problem(api.post("/api/v1/tokens", json=again), 409)

    codes = [unique("D"), unique("D")]
    for code in codes:  # the same client request id twice
        made = api.post(
            "/api/v1/depots",
            json={"code": code, "name": code},
            headers={"X-Request-ID": "reused-id"},
        )
        assert made.status_code == 201
    records = [audit_records(api, f"depot:{code}")[0] for code in codes]
    assert {r["client_request_id"] for r in records} == {"reused-id"}
    assert records[0]["request_id"] != records[1]["request_id"]
    # The record names the credential; the token's own record says whom it was issued to.
    token_id = records[0]["token_id"]
    [issued] = audit_records(api, f"token:{token_id}")
    assert issued["action"] == "token.create" and issued["changes"]["name"] == "test admin"


def test_token_requests_that_make_no_sense_are_422_naming_the_field(api: Api) -> None:
    depot = unique("D")
    assert api.post("/api/v1/depots", json={"code": depot, "name": depot}).status_code == 201
    twice = {"name": unique("c"), "role": "clerk", "depots": [depot, depot]}
    assert "depots" in assert_problem(api.post("/api/v1/tokens", json=twice), 422)["errors"]
    unknown = {"name": unique("c"), "role": "superuser"}
    assert "role" in assert_problem(api.post("/api/v1/tokens", json=unknown), 422)["errors"]


def test_the_last_active_admin_token_cannot_be_revoked(own_app: tuple[Flask, Api, str]) -> None:
    _, api, admin_id = own_app
    refused = assert_problem(api.delete(f"/api/v1/tokens/{admin_id}"), 409)
    assert "inventory tokens create --role admin" in refused["detail"]
    second = api.post("/api/v1/tokens", json={"name": "second admin", "role": "admin"})
    assert second.status_code == 201
    assert api.delete(f"/api/v1/tokens/{admin_id}").status_code == 200


def test_a_discrepancy_changes_status_only_with_its_event_and_the_check_notices_the_rest(
    own_app: tuple[Flask, Api, str], fresh_database_url: str
) -> None:
    flask_app, api, _ = own_app
    world = make_world(api)
    serial = unique("AK")
    world.receive([serial])
    lost = api.post(
        "/api/v1/movements",
        json={
            "kind": "loss",
            "from": f"depot:{world.depot}",
            "occurred_at": ago(minutes=5),
            "case_ref": "C-9",
            "lines": [{"serial": serial}],
        },
    )
    assert lost.status_code == 201
    [loss] = api.get("/api/v1/discrepancies", query_string={"kind": "reported_loss"}).get_json()[
        "items"
    ]
    engine = create_engine(fresh_database_url)
    postgres = engine.dialect.name == "postgresql"
    quietly = f"UPDATE discrepancies SET status = 'resolved' WHERE id = '{loss['id']}'"
    if not postgres:
        quietly = quietly.replace(f"'{loss['id']}'", f"'{loss['id'].replace('-', '')}'")
    assert "event" in refusal(engine, quietly)
    # The lifecycle itself still works, and the check finds everything in order.
    resolved = api.post(
        f"/api/v1/discrepancies/{loss['id']}/events",
        json={"action": "resolve", "note": "found in the armoury"},
    )
    assert resolved.status_code == 201, resolved.get_json()
    runner = CliRunner()
    env = {"INVENTORY_DATABASE_URL": fresh_database_url}
    checked = runner.invoke(main, ["ledger", "rebuild", "--check"], env=env)
    assert checked.exit_code == 0, checked.output

    # Someone who owns the tables goes around the triggers: the check names what they did.
    clerk = api.post(
        "/api/v1/tokens", json={"name": unique("c"), "role": "clerk", "depots": [world.depot]}
    ).get_json()
    with engine.begin() as conn:
        if postgres:
            conn.execute(text("ALTER TABLE discrepancies DISABLE TRIGGER discrepancies_lifecycle"))
        else:
            conn.execute(text("DROP TRIGGER discrepancies_lifecycle"))
        conn.execute(text(quietly.replace("'resolved'", "'open'")))
        depot_id = conn.scalar(
            text("SELECT id FROM holders WHERE kind = 'depot' AND code = :c"),
            {"c": world.other_depot},
        )
        token_id = clerk["id"] if postgres else clerk["id"].replace("-", "")
        conn.execute(
            text(
                f"INSERT INTO token_depots (token_id, holder_id) VALUES ('{token_id}', {depot_id})"
            )
        )
    engine.dispose()
    checked = runner.invoke(main, ["ledger", "rebuild", "--check"], env=env)
    assert checked.exit_code == 1
    assert f"discrepancy {loss['id']}" in checked.output
    assert f"token {clerk['id']}" in checked.output


def test_as_the_app_role_a_discrepancy_status_changes_only_with_an_event(
    backend: str, request: pytest.FixtureRequest
) -> None:
    engine = create_engine(request.getfixturevalue("database_with_app_role"))
    role = app_role()
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO discrepancies (id, kind, severity, status, subject_key, "
                    "detected_at, summary) VALUES (gen_random_uuid(), 'reported_loss', "
                    "'critical', 'open', 'weapon:x', now(), 'stolen')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO discrepancy_events (discrepancy_seq, at, actor, action) "
                    "SELECT seq, now(), 'tests', 'opened' FROM discrepancies"
                )
            )
        resolved = "UPDATE discrepancies SET status = 'resolved', resolved_at = now()"
        assert "not explained by its latest event" in refusal(engine, resolved, role=role)
        renamed = "UPDATE discrepancies SET summary = 'nothing happened'"
        assert "permission denied" in refusal(engine, renamed, role=role)
        assert "permission denied" in refusal(engine, "DELETE FROM discrepancies", role=role)
        for statement in (
            "UPDATE holders SET home_depot_id = NULL",
            "UPDATE token_depots SET holder_id = holder_id",
        ):
            assert "permission denied" in refusal(engine, statement, role=role)
        assert "permission denied" in refusal(engine, "UPDATE tokens SET role = 'admin'", role=role)
    finally:
        engine.dispose()


def test_everything_the_app_does_it_can_still_do_as_the_app_role(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The narrowed grants leave every write path working: movements across depots, a recovery
    that moves a loss to investigating, a resolve, a stocktake, a transfer, subscriptions and
    tokens, all as the application role."""
    url = request.getfixturevalue("database_with_app_role")
    flask_app = create_app({"SETTINGS": make_settings(url, tmp_path)})
    role = app_role()
    event.listen(
        flask_app.extensions["inventory.engine"],
        "begin",
        lambda conn: conn.exec_driver_sql(f"SET LOCAL ROLE {role}"),
    )
    session = flask_app.extensions["inventory.sessions"]()
    try:
        secret = run_write(
            session,
            Context(actor=operator("tests")),
            lambda uow: tokens.create_token(uow, "app role admin", "admin", []),
            lambda issued, _uow: issued.secret,
        ).body
    finally:
        session.close()
    api = Api(flask_app.test_client(), str(secret))
    try:
        world = make_world(api)
        two = TwoDepots(world, unique("U"), "", "")
        made = api.post(
            "/api/v1/units", json={"code": two.unit_b, "name": "b", "depot": world.other_depot}
        )
        assert made.status_code == 201
        serial, _ = two.fresh_weapon()
        lost, _ = two.fresh_weapon()
        assert world.issue([serial]).status_code == 201
        steps = [
            {
                "kind": "return",
                "from": f"unit:{world.unit}",
                "to": f"depot:{world.other_depot}",
                "document_ref": "D-1",
                "lines": [{"serial": serial}],
            },
            {
                "kind": "loss",
                "from": f"depot:{world.depot}",
                "case_ref": "C-1",
                "lines": [{"serial": lost}],
            },
            {
                "kind": "recovery",
                "from": "lost",
                "to": f"depot:{world.other_depot}",
                "document_ref": "D-2",
                "case_ref": "C-1",
                "lines": [{"serial": lost}],
            },
        ]
        for step in steps:
            posted = two.post(None, **step)
            assert posted.status_code == 201, posted.get_json()
        opened = api.get("/api/v1/discrepancies", query_string={"limit": 100}).get_json()["items"]
        for discrepancy in opened:
            resolved = api.post(
                f"/api/v1/discrepancies/{discrepancy['id']}/events",
                json={"action": "resolve", "note": "settled"},
            )
            assert resolved.status_code == 201, resolved.get_json()
        stocktake = api.post("/api/v1/stocktakes", json={"depot": world.depot})
        assert stocktake.status_code == 201, stocktake.get_json()
        closed = api.post(f"/api/v1/stocktakes/{stocktake.get_json()['id']}/close")
        assert closed.status_code == 200, closed.get_json()
        transfer = api.post(
            "/api/v1/transfers",
            json={
                "from": f"depot:{world.other_depot}",
                "to": f"depot:{world.depot}",
                "expected_by": ago(days=-3),
                "document_ref": "T-1",
                "lines": [{"serial": serial}],
            },
        )
        assert transfer.status_code == 201, transfer.get_json()
        received = api.post(
            f"/api/v1/transfers/{transfer.get_json()['id']}/receipt",
            json={"received_at": ago(seconds=0), "lines": [{"serial": serial}]},
        )
        assert received.status_code == 201, received.get_json()
        hook = {"url": "https://93.184.215.14/app-role", "events": ["weapon.recovered"]}
        subscription = api.post("/api/v1/subscriptions", json=hook)
        assert subscription.status_code == 201, subscription.get_json()
        gone = api.delete(f"/api/v1/subscriptions/{subscription.get_json()['id']}")
        assert gone.status_code == 200, gone.get_json()
        other = api.post("/api/v1/tokens", json={"name": "second", "role": "admin"})
        assert other.status_code == 201
        assert api.delete(f"/api/v1/tokens/{other.get_json()['id']}").status_code == 200
    finally:
        flask_app.extensions["inventory.engine"].dispose()
