"""The console through Flask's test client: sessions, CSRF, and that each role sees and does in
the browser exactly what the API lets it (on SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from inventory.db.models import ConsoleSession, Token
from inventory.services import overview

from .conftest import Api, unique
from .console_helpers import Console, lose_at, receive_at
from .ledger_helpers import World, make_world

PAGES = [
    "/console/",
    "/console/discrepancies",
    "/console/weapons",
    "/console/transfers",
    "/console/verifications",
    "/console/alerts",
    "/console/report",
]


@pytest.fixture
def world(api: Api) -> World:
    return make_world(api)


@pytest.fixture
def cases(world: World) -> dict[str, list[str]]:
    """Two weapons received and lost in each of two depots: reported_loss discrepancies there."""
    found = {}
    for depot in (world.depot, world.other_depot):
        serials = [unique("AK"), unique("AK")]
        receive_at(world, depot, serials)
        found[depot] = lose_at(world, depot, serials)
    return found


def session_rows(app: Flask, token_id: Any) -> list[ConsoleSession]:
    wanted = uuid.UUID(str(token_id))
    with app.extensions["inventory.sessions"]() as db:
        return list(db.scalars(select(ConsoleSession).where(ConsoleSession.token_id == wanted)))


def token_id_of(app: Flask, name_prefix: str) -> Any:
    with app.extensions["inventory.sessions"]() as db:
        return db.scalar(select(Token.id).where(Token.name == name_prefix))


def test_pages_need_a_session(client: Any) -> None:
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/console/sign-in")


def test_sign_in_keeps_only_a_hash_of_the_session_id(app: Flask, api: Api) -> None:
    name = unique("auditor")
    token = api.post("/api/v1/tokens", json={"name": name, "role": "auditor"}).get_json()
    console = Console(app.test_client())
    response = console.sign_in(token["token"])
    assert response.status_code == 303 and response.headers["Location"] == "/console/"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console/" in cookie
    assert "Secure" not in cookie  # plain http (tests, a laptop): the browser would drop it
    session_id = cookie.split(";")[0].split("=", 1)[1]
    rows = session_rows(app, token_id_of(app, name))
    assert [row.id_sha256 for row in rows] == [hashlib.sha256(session_id.encode()).hexdigest()]
    assert all(session_id not in (row.id_sha256, row.csrf_token) for row in rows)
    assert name in console.text("/console/")
    audit = api.get("/api/v1/audit", query_string={"action": "console.sign_in"}).get_json()
    assert any(record["actor"] == name for record in audit["items"])


def test_over_https_the_cookie_is_secure(app: Flask, api: Api) -> None:
    token = api.token_for("auditor")
    console = Console(app.test_client())
    response = console.sign_in(token, base_url="https://localhost")
    assert response.status_code == 303
    assert "Secure" in response.headers["Set-Cookie"]


def test_a_wrong_token_is_refused(app: Flask) -> None:
    response = Console(app.test_client()).sign_in("stk_not-a-token")
    assert response.status_code == 401
    assert "stockpile_console=" not in response.headers.get("Set-Cookie", "")
    assert "unknown or has been revoked" in response.get_data(as_text=True)


def test_sign_in_without_its_csrf_token_is_refused(app: Flask, api: Api) -> None:
    client = app.test_client()
    client.get("/console/sign-in")
    response = client.post("/console/sign-in", data={"token": api.token_for("auditor")})
    assert response.status_code == 400


def test_sign_out_ends_the_session(app: Flask, api: Api) -> None:
    console = Console.signed_in(app, api.token_for("auditor"))
    response = console.submit("/console/", "/console/sign-out", {})
    assert response.status_code == 303
    assert console.get("/console/").status_code == 302


def test_revoking_the_token_ends_its_sessions(app: Flask, api: Api) -> None:
    name = unique("monitor")
    issued = api.post("/api/v1/tokens", json={"name": name, "role": "monitor"}).get_json()
    first = Console.signed_in(app, issued["token"])
    second = Console.signed_in(app, issued["token"])
    assert len(session_rows(app, issued["id"])) == 2
    assert api.delete(f"/api/v1/tokens/{issued['id']}").status_code == 200
    assert first.get("/console/").status_code == 302
    assert second.get("/console/alerts").status_code == 302
    assert session_rows(app, issued["id"]) == []


def test_an_idle_session_expires(app: Flask, api: Api) -> None:
    name = unique("auditor")
    issued = api.post("/api/v1/tokens", json={"name": name, "role": "auditor"}).get_json()
    console = Console.signed_in(app, issued["token"])
    assert console.get("/console/weapons").status_code == 200
    idle = app.extensions["inventory.settings"].console_idle
    with app.extensions["inventory.sessions"]() as db:
        for row in session_rows(app, issued["id"]):
            db.execute(
                update(ConsoleSession)
                .where(ConsoleSession.id_sha256 == row.id_sha256)
                .values(last_seen_at=row.last_seen_at - idle - timedelta(seconds=5))
            )
        db.commit()
    Console.signed_in(app, issued["token"])  # a sign-in sweeps sessions left idle
    rows = session_rows(app, issued["id"])
    assert len(rows) == 1  # only the new one: the idle one is gone before it is asked for
    assert console.get("/console/weapons").status_code == 302


def test_every_role_reads_every_page_it_may(app: Flask, api: Api, world: World, cases: Any) -> None:
    expected = {
        "admin": set(PAGES),
        "auditor": set(PAGES),
        "monitor": set(PAGES),
        "clerk": set(PAGES) - {"/console/verifications", "/console/alerts"},
    }
    for role, allowed in expected.items():
        token = api.token_for(role, [world.depot] if role == "clerk" else None)
        console = Console.signed_in(app, token)
        for path in PAGES:
            response = console.get(path)
            want = 200 if path in allowed else 403
            assert response.status_code == want, (role, path, response.status_code)
        nav = console.text("/console/")
        assert ('href="/console/alerts"' in nav) == ("/console/alerts" in allowed)


def test_a_note_posted_through_the_form_is_on_the_timeline(
    app: Flask, api: Api, world: World, cases: dict[str, list[str]]
) -> None:
    console = Console.signed_in(app, api.token_for("auditor"))
    case = cases[world.depot][0]
    page = f"/console/discrepancies/{case}"
    note = unique("Checked the guard room log")
    response = console.submit(page, f"{page}/events", {"action": "note", "note": note})
    assert response.status_code == 303
    assert note in console.text(page)
    events = api.get(f"/api/v1/discrepancies/{case}").get_json()["events"]
    assert events[-1]["action"] == "note" and events[-1]["note"] == note


def test_a_form_without_its_csrf_token_is_refused(
    app: Flask, api: Api, world: World, cases: dict[str, list[str]]
) -> None:
    console = Console.signed_in(app, api.token_for("auditor"))
    case = cases[world.depot][0]
    path = f"/console/discrepancies/{case}/events"
    for form in (
        {"action": "note", "note": "x"},
        {"action": "note", "note": "x", "csrf_token": "forged"},
    ):
        response = console.client.post(path, data=form)
        assert response.status_code == 400, response.get_data(as_text=True)
    events = api.get(f"/api/v1/discrepancies/{case}").get_json()["events"]
    assert [e["action"] for e in events] == ["opened"]


def test_a_clerk_sees_only_their_depot(
    app: Flask, api: Api, world: World, cases: dict[str, list[str]]
) -> None:
    console = Console.signed_in(app, api.token_for("clerk", [world.depot]))
    overview_page = console.text("/console/")
    assert world.depot in overview_page and world.other_depot not in overview_page
    listing = console.text("/console/discrepancies?kind=reported_loss")
    assert all(case in listing for case in cases[world.depot])
    assert not any(case in listing for case in cases[world.other_depot])
    assert console.get(f"/console/discrepancies?depot={world.other_depot}").status_code == 403
    assert console.get(f"/console/discrepancies/{cases[world.other_depot][0]}").status_code == 404
    report = console.text("/console/report")
    assert world.depot in report and world.other_depot not in report
    exported = console.get("/console/discrepancies?format=csv").get_data(as_text=True)
    assert {row["depot"] for row in csv.DictReader(io.StringIO(exported))} == {world.depot}


def test_a_monitor_cannot_resolve(
    app: Flask, api: Api, world: World, cases: dict[str, list[str]]
) -> None:
    console = Console.signed_in(app, api.token_for("monitor"))
    case = cases[world.depot][0]
    page = f"/console/discrepancies/{case}"
    assert 'value="resolve"' not in console.text(page)  # no form to act with
    response = console.submit(page, f"{page}/events", {"action": "resolve", "note": "found"})
    assert response.status_code == 403
    assert api.get(f"/api/v1/discrepancies/{case}").get_json()["status"] == "open"


def test_a_clerk_is_offered_only_a_note_on_their_depots_cases(
    app: Flask, api: Api, world: World, cases: dict[str, list[str]]
) -> None:
    console = Console.signed_in(app, api.token_for("clerk", [world.depot]))
    page = console.text(f"/console/discrepancies/{cases[world.depot][0]}")
    assert 'value="note"' in page
    assert 'value="investigate"' not in page and 'value="resolve"' not in page


def test_an_auditor_investigates_and_resolves(
    app: Flask, api: Api, world: World, cases: dict[str, list[str]]
) -> None:
    console = Console.signed_in(app, api.token_for("auditor"))
    case = cases[world.depot][0]
    page = f"/console/discrepancies/{case}"
    assert console.submit(page, f"{page}/events", {"action": "investigate"}).status_code == 303
    refused = console.submit(page, f"{page}/events", {"action": "resolve"})
    assert refused.status_code == 422 and "note" in refused.get_data(as_text=True)
    done = console.submit(page, f"{page}/events", {"action": "resolve", "note": "recovered"})
    assert done.status_code == 303
    assert api.get(f"/api/v1/discrepancies/{case}").get_json()["status"] == "resolved"


def test_the_worklist_filters_pages_and_exports_what_it_shows(
    app: Flask, api: Api, world: World, cases: dict[str, list[str]]
) -> None:
    console = Console.signed_in(app, api.token_for("auditor"))
    query = f"depot={world.depot}&kind=reported_loss&severity=critical&status=open&limit=1"
    first = console.text(f"/console/discrepancies?{query}")
    assert "Next page" in first
    shown = [case for case in cases[world.depot] if case in first]
    assert len(shown) == 1
    exported = console.get(f"/console/discrepancies?{query}&format=csv")
    assert exported.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    assert sorted(row["id"] for row in rows) == sorted(cases[world.depot])
    none = console.text(f"/console/discrepancies?depot={world.depot}&severity=low")
    assert "No discrepancy matches" in none
    assert console.get("/console/discrepancies?kind=no_such_kind").status_code == 422


def test_weapon_search_custody_trace_and_a_sighting(app: Flask, api: Api, world: World) -> None:
    serial = unique("AK")
    receive_at(world, world.depot, [serial])
    monitor = Console.signed_in(app, api.token_for("monitor"))
    found = monitor.text(f"/console/weapons?serial={serial}")
    weapon_id = world.weapon(serial)["id"]
    assert f"/console/weapons/{weapon_id}" in found
    by_type = monitor.text(f"/console/weapons?manufacturer={world.maker}&item_type={world.rifle}")
    assert serial in by_type
    page = monitor.text(f"/console/weapons/{weapon_id}")
    assert "receipt" in page and f"depot:{world.depot}" in page and "Trace of serial" in page
    response = monitor.submit(
        f"/console/weapons/{weapon_id}",
        "/console/sightings",
        {
            "serial": serial,
            "manufacturer": world.maker,
            "observed_at": "2026-11-30T10:00",
            "place": "Mirna valley",
            "circumstances": "recovered from an armed group",
        },
    )
    assert response.status_code == 303, response.get_data(as_text=True)
    case = monitor.text(response.headers["Location"])
    assert "sighting_outside_custody" in case
    clerk = Console.signed_in(app, api.token_for("clerk", [world.other_depot]))
    assert clerk.get(f"/console/weapons/{weapon_id}").status_code == 404
    assert "Trace of serial" not in Console.signed_in(
        app, api.token_for("clerk", [world.depot])
    ).text(f"/console/weapons/{weapon_id}")


def test_alerts_are_newest_first(app: Flask, api: Api, world: World, cases: Any) -> None:
    page = Console.signed_in(app, api.token_for("monitor")).text("/console/alerts")
    positions = [page.find(case) for case in cases[world.other_depot] + cases[world.depot]]
    # the other depot's losses were posted last: they come first
    assert all(p > 0 for p in positions)
    assert max(positions[:2]) < min(positions[2:])


def test_the_overview_shows_the_chain_and_records_a_verification(
    app: Flask, api: Api, world: World, cases: Any
) -> None:
    console = Console.signed_in(app, api.token_for("auditor"))
    page = console.text("/console/")
    assert "<svg" in page and "Audit chain" in page
    response = console.submit("/console/", "/console/audit/verify", {})
    assert response.status_code == 303
    assert "sound</span> through seq" in console.text("/console/")


def test_month_ends_are_the_first_instants_of_the_last_twelve_months() -> None:
    from datetime import UTC, datetime

    ends = overview.month_ends(datetime(2026, 3, 15, 9, 30, tzinfo=UTC))
    assert len(ends) == 12
    assert ends[0] == datetime(2025, 4, 1, tzinfo=UTC)
    assert ends[-1] == datetime(2026, 3, 1, tzinfo=UTC)


def test_a_verification_run_from_the_cli_shows_on_the_overview(
    app: Flask, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from inventory.cli import main

    settings = app.extensions["inventory.settings"]
    monkeypatch.setenv("INVENTORY_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("INVENTORY_SIGNING_KEY", str(settings.signing_key_path))
    result = CliRunner().invoke(main, ["audit", "verify"])
    assert result.exit_code == 0, result.output
    page = Console.signed_in(app, api.token_for("monitor")).text("/console/")
    assert "by operator:audit-verify" in page and "sound</span>" in page


def test_the_chart_draws_a_line_per_depot_and_leaves_gaps_where_nothing_was_on_the_books() -> None:
    from datetime import UTC, datetime

    from inventory.console.chart import axis_floor, rate_chart

    months = overview.month_ends(datetime(2026, 12, 2, tzinfo=UTC), count=4)
    svg = str(rate_chart(months, {"D-A": [None, 0.99, 1.0, 0.98], "D-B": [1.0, None, 1.0, 1.0]}))
    assert svg.startswith("<svg") and svg.count("<polyline") == 2  # D-B's first point is alone
    assert svg.count("<circle") == 6 and ">D-A</text>" in svg and ">D-B</text>" in svg
    assert "<script" not in svg and "style=" not in svg  # nothing the page's CSP would refuse
    assert axis_floor([0.9957, 1.0]) == 0.95 and axis_floor([0.42]) == 0.0


def test_unknown_console_addresses_get_a_page(app: Flask, api: Api) -> None:
    console = Console.signed_in(app, api.token_for("auditor"))
    for path in ("/console/nope", "/console/weapons/not-a-uuid"):
        response = console.get(path)
        assert response.status_code == 404 and response.mimetype == "text/html", path
        assert "Sign out" in response.get_data(as_text=True)
    assert console.client.get("/console/nope").status_code == 404
    assert Console(app.test_client()).get("/console/nope").status_code == 302  # not signed in


def test_the_stylesheet_is_served_without_signing_in(client: Any) -> None:
    response = client.get("/console/static/console.css")
    assert response.status_code == 200 and response.mimetype == "text/css"
    assert ":focus-visible" in response.get_data(as_text=True)
    response.close()
