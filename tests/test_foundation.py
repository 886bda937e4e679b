"""The service foundation: auth, problems, reference data, tokens, migrations."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from inventory import create_app
from inventory.api.auth import PUBLIC_ENDPOINTS
from inventory.db import migrate

from .conftest import Api, make_settings, unique

PROBLEM = "application/problem+json"


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == PROBLEM
    body: dict[str, Any] = response.get_json()
    assert body["status"] == status and body["title"] and body["type"] and "detail" in body
    return body


def test_health_is_public_and_checks_the_database(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_migrations_leave_no_drift(fresh_database_url: str) -> None:
    migrate.check(fresh_database_url)  # raises on any difference between models and schema


def test_every_api_route_declares_roles_and_requires_a_token(
    app: Flask, client: FlaskClient
) -> None:
    checked = 0
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1") or rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        view = app.view_functions[rule.endpoint]
        view_class = getattr(view, "view_class", None)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            handler = getattr(view_class, method.lower(), view)
            assert getattr(handler, "allowed_roles", None), (
                f"{method} {rule.rule} declares no roles"
            )
            path = rule.rule.replace("<uuid:", "<").replace("<", "").replace(">", "")
            assert_problem(client.open(path, method=method), 401)
            checked += 1
    assert checked >= 10


def test_bad_token_is_401(client: FlaskClient) -> None:
    response = client.get("/api/v1/depots", headers={"Authorization": "Bearer stk_nope"})
    assert_problem(response, 401)


def test_tokens_are_stored_hashed(api: Api, database_url: str) -> None:
    secret = api.token_for("auditor")
    engine = create_engine(database_url)
    with engine.connect() as conn:
        stored = [row[0] for row in conn.execute(text("SELECT secret_sha256 FROM tokens"))]
    engine.dispose()
    assert secret not in stored and all(len(value) == 64 for value in stored)
    assert api.get("/api/v1/depots", token=secret).status_code == 200


def test_revoked_token_stops_working(api: Api) -> None:
    issued = api.post("/api/v1/tokens", json={"name": unique("m"), "role": "monitor"}).get_json()
    assert api.get("/api/v1/depots", token=issued["token"]).status_code == 200
    revoked = api.delete(f"/api/v1/tokens/{issued['id']}")
    assert revoked.status_code == 200 and revoked.get_json()["revoked_at"] is not None
    assert "token" not in revoked.get_json()
    assert_problem(api.get("/api/v1/depots", token=issued["token"]), 401)
    listed = api.get("/api/v1/tokens", query_string={"limit": 1000}).get_json()["items"]
    assert all("token" not in t for t in listed)


def test_admin_creates_reference_data_and_duplicates_conflict(api: Api, depot: str) -> None:
    assert api.get(f"/api/v1/depots/{depot}").get_json()["code"] == depot
    body = assert_problem(api.post("/api/v1/depots", json={"code": depot, "name": "again"}), 409)
    assert depot in body["detail"]
    unit = unique("U")
    response = api.post("/api/v1/units", json={"code": unit, "name": "3rd Bde", "depot": depot})
    assert response.status_code == 201 and response.get_json()["depot"] == depot
    party = unique("P")
    response = api.post(
        "/api/v1/parties",
        json={"code": party, "name": "Partner", "country": "XX", "kind": "recipient"},
    )
    assert response.status_code == 201 and response.get_json()["kind"] == "recipient"
    item = unique("AKM")
    response = api.post(
        "/api/v1/item-types", json={"code": item, "category": "weapon", "name": "AKM"}
    )
    assert response.status_code == 201
    assert_problem(api.get(f"/api/v1/depots/{unique('NONE')}"), 404)


def test_codes_must_be_upper_case_identifiers(api: Api) -> None:
    body = assert_problem(api.post("/api/v1/depots", json={"code": "d north", "name": "x"}), 422)
    assert "code" in body["errors"]


def test_unit_with_unknown_depot_is_refused(api: Api) -> None:
    body = assert_problem(
        api.post("/api/v1/units", json={"code": unique("U"), "name": "x", "depot": "NO-SUCH"}), 422
    )
    assert "NO-SUCH" in body["errors"]["depot"][0]


def test_roles_are_enforced(api: Api, depot: str) -> None:
    clerk = api.token_for("clerk", [depot])
    assert api.get("/api/v1/depots", token=clerk).status_code == 200
    body = assert_problem(
        api.post("/api/v1/depots", json={"code": unique("D"), "name": "x"}, token=clerk), 403
    )
    assert "clerk" in body["detail"]
    assert_problem(api.get("/api/v1/tokens", token=clerk), 403)


def test_clerk_tokens_need_a_known_depot(api: Api) -> None:
    assert_problem(api.post("/api/v1/tokens", json={"name": "c", "role": "clerk"}), 422)
    body = assert_problem(
        api.post("/api/v1/tokens", json={"name": "c", "role": "clerk", "depots": ["NOPE"]}), 422
    )
    assert "NOPE" in body["errors"]["depots"][0]


def test_bad_input_is_a_problem_never_a_500(api: Api) -> None:
    headers = {"Content-Type": "application/json"}
    assert_problem(api.post("/api/v1/depots", data="{not json", headers=headers), 400)
    body = assert_problem(api.post("/api/v1/depots", json={"code": 12, "name": ["x"]}), 422)
    assert set(body["errors"]) == {"code", "name"}
    body = assert_problem(
        api.post("/api/v1/depots", json={"code": unique(), "name": "x", "extra": 1}), 422
    )
    assert "extra" in body["errors"]
    assert_problem(api.post("/api/v1/depots", json=["a list"]), 422)
    assert_problem(api.post("/api/v1/depots", data="x" * (9 * 1024 * 1024), headers=headers), 413)
    assert_problem(api.get("/api/v1/no-such-thing"), 404)
    assert_problem(api.request("PUT", "/api/v1/depots", json={}), 405)
    assert_problem(api.get("/api/v1/depots", query_string={"limit": 0}), 422)
    assert_problem(api.get("/api/v1/depots", query_string={"after": "!!"}), 422)


def test_pagination_walks_every_depot_once(api: Api) -> None:
    codes = {unique("PG") for _ in range(5)}
    for code in codes:
        api.post("/api/v1/depots", json={"code": code, "name": code})
    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": 2, **({"after": cursor} if cursor else {})}
        page = api.get("/api/v1/depots", query_string=query).get_json()
        seen += [d["code"] for d in page["items"]]
        if not (cursor := page["next"]):
            break
    assert codes <= set(seen) and len(seen) == len(set(seen))


def test_idempotency_key_replays_and_refuses_another_body(api: Api) -> None:
    code = unique("D")
    headers = {"Idempotency-Key": unique("key")}
    first = api.post("/api/v1/depots", json={"code": code, "name": "x"}, headers=headers)
    again = api.post("/api/v1/depots", json={"code": code, "name": "x"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.get_json() == again.get_json() and again.headers["Idempotent-Replayed"] == "true"
    reused = assert_problem(
        api.post("/api/v1/depots", json={"code": code, "name": "y"}, headers=headers), 422
    )
    assert reused["type"].endswith("/idempotency-key-reused")


def test_unexpected_errors_are_500_problems_with_a_request_id(
    app: Flask, client: FlaskClient
) -> None:
    def explode() -> None:
        raise RuntimeError("secret internals")

    app.view_functions["health.healthz"], original = explode, app.view_functions["health.healthz"]
    try:
        body = assert_problem(client.get("/healthz"), 500)
    finally:
        app.view_functions["health.healthz"] = original
    assert "secret internals" not in str(body) and body["request_id"]


def test_openapi_and_docs_are_served_without_a_cdn(client: FlaskClient) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "/api/v1/depots" in spec["paths"]
    page = client.get("/api/v1/docs").get_data(as_text=True)
    assert (
        "/api/v1/docs/assets/swagger-ui-bundle.js" in page
        and "https://" not in page.split("<body>")[0]
    )
    asset = client.get("/api/v1/docs/assets/swagger-ui-bundle.js")
    asset.close()
    assert asset.status_code == 200


def test_health_is_a_503_problem_when_the_database_is_unreachable(tmp_path: Path) -> None:
    # Nothing listens on port 1: the connection is refused at once, on any machine.
    settings = make_settings("postgresql+psycopg://postgres@127.0.0.1:1/nope", tmp_path)
    unreachable = create_app({"SETTINGS": settings})
    try:
        response = unreachable.test_client().get("/healthz")
        body = assert_problem(response, 503)
    finally:
        unreachable.extensions["inventory.engine"].dispose()
    assert "database" in body["detail"] and body["request_id"]


def test_logs_are_json_lines_carrying_the_request_id(
    client: FlaskClient, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    capsys.readouterr()
    with caplog.at_level(logging.INFO):
        response = client.get("/healthz", headers={"X-Request-ID": "trace-4711"})
    response.close()
    # The request id is always the server's own; a client's X-Request-ID never replaces it.
    server_id = response.headers["X-Request-ID"]
    assert server_id != "trace-4711" and len(server_id) == 32
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    access = [e for e in entries if e["logger"] == "inventory.access" and e["path"] == "/healthz"]
    assert access, f"no access log line on stderr: {lines}"
    assert access[-1]["request_id"] == server_id and access[-1]["status"] == 200


def test_flask_cli_finds_the_app(tmp_path: Path) -> None:
    flask = Path(sys.executable).with_name("flask")
    env = {
        **os.environ,
        "INVENTORY_DATABASE_URL": f"sqlite:///{tmp_path / 'routes.sqlite3'}",
        "INVENTORY_INSTANCE_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [str(flask), "--app", "inventory", "routes"],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "/healthz" in result.stdout and "/api/v1/depots" in result.stdout
