"""The contract as outside clients see it: the served OpenAPI document checked by tools nobody on
the project wrote (openapi-spec-validator; schemathesis with every check on, for each role), and
what the document promises about itself (operationIds, error responses, headers, webhooks)."""

from __future__ import annotations

import json
import os
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, Phase, given, settings
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import positive_data_acceptance

from inventory import worker
from inventory.api import conventions, openapi
from inventory.domain.actors import operator
from inventory.services import delivery, subscriptions, webhook_urls
from inventory.services.unit_of_work import Context, run_write

from .conftest import Api, unique
from .ledger_helpers import ago, make_world

FORMAT_CHECKER = Draft202012Validator.FORMAT_CHECKER

SOAK = os.environ.get("INVENTORY_SOAK") == "1"
EXAMPLES = 40 if SOAK else 3
ROLES = ("admin", "clerk", "auditor", "monitor")
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def document(app: Flask) -> dict[str, Any]:
    spec: dict[str, Any] = app.test_client().get("/api/v1/openapi.json").get_json()
    return spec


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in openapi.METHODS
    ]


def test_the_served_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema


def test_every_operation_has_an_operation_id_from_the_table(document: dict[str, Any]) -> None:
    missing = [
        f"{method} {path}"
        for method, path, op in operations(document)
        if (method, path) not in openapi.OPERATION_IDS
    ]
    assert not missing, f"add these to inventory/api/openapi.py OPERATION_IDS: {missing}"
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(ids) == len(set(ids))
    stale = set(openapi.OPERATION_IDS) - {(m, p) for m, p, _ in operations(document)}
    assert not stale, f"OPERATION_IDS rows for operations that no longer exist: {stale}"


def test_every_operation_has_a_summary_description_and_no_catch_all(
    document: dict[str, Any],
) -> None:
    for method, path, op in operations(document):
        label = f"{method} {path}"
        assert op["summary"] and op["description"], label
        assert "default" not in op["responses"], label
        assert {"401", "403"} <= set(op["responses"]), label
        if "{" in path:
            assert "404" in op["responses"], label
        if method in ("POST", "DELETE"):
            assert "409" in op["responses"], label
        if "requestBody" in op:
            assert {"413", "415", "422"} <= set(op["responses"]), label
            assert "example" in op["requestBody"]["content"]["application/json"], label


def test_a_filter_naming_an_unknown_holder_or_depot_gives_only_documented_statuses(
    api: Api, document: dict[str, Any]
) -> None:
    unknown = {"holder": "depot:NO-SUCH-DEPOT", "depot": "NO-SUCH-DEPOT"}
    tried = 0
    for method, path, op in operations(document):
        names = {p["name"] for p in op.get("parameters", []) if p.get("in") == "query"}
        query = {name: value for name, value in unknown.items() if name in names}
        if method != "GET" or not query:
            continue
        status = api.get(path, query_string=query).status_code
        assert str(status) in op["responses"], f"{path}?{query}: {status} is not documented"
        tried += 1
    assert tried >= 4


def test_links_name_operations_that_exist(document: dict[str, Any]) -> None:
    ids = {op["operationId"] for _, _, op in operations(document)}
    linked = [
        link["operationId"]
        for _, _, op in operations(document)
        for response in op["responses"].values()
        for link in response.get("links", {}).values()
    ]
    assert linked and set(linked) <= ids


def test_errors_are_documented_as_problems_that_allow_extension_members(
    document: dict[str, Any],
) -> None:
    for name, response in document["components"]["responses"].items():
        assert list(response["content"]) == [PROBLEM], name
    problem = document["components"]["schemas"]["Problem"]
    assert problem["additionalProperties"] is True
    assert set(problem["required"]) == {"type", "title", "status", "detail"}


def test_writes_document_idempotency_key_location_and_replay(document: dict[str, Any]) -> None:
    key = {"$ref": "#/components/parameters/IdempotencyKey"}
    for method, path, op in operations(document):
        if method not in ("POST", "DELETE"):
            continue
        assert key in op["parameters"], f"{method} {path}"
        for status, response in op["responses"].items():
            if status.startswith("2"):
                assert "Idempotent-Replayed" in response["headers"], f"{method} {path}"
            if status == "201":
                assert "Location" in response["headers"], f"{method} {path}"
                rule = path.replace("{", "<uuid:").replace("}", ">")
                assert rule in conventions.LOCATIONS, f"no Location for {method} {path}"


def test_csv_is_documented_wherever_it_is_served(document: dict[str, Any]) -> None:
    served = set()
    for method, path, op in operations(document):
        formats = [p for p in op.get("parameters", []) if p.get("name") == "format"]
        if formats and "csv" in formats[0]["schema"].get("enum", []):
            served.add(path)
            assert "text/csv" in op["responses"]["200"]["content"], f"{method} {path}"
    assert served == conventions.CSV_RULES


def test_webhooks_describe_every_event_type_with_its_signature_headers(
    document: dict[str, Any],
) -> None:
    assert set(document["webhooks"]) == set(subscriptions.EVENT_TYPES)
    for event_type, item in document["webhooks"].items():
        post = item["post"]
        headers = {p["name"] for p in post["parameters"] if p["in"] == "header"}
        assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}, event_type
        ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        body = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
        assert body["properties"]["type"]["const"] == event_type


def test_webhook_bodies_match_their_documented_schemas(
    app: Flask, api: Api, document: dict[str, Any]
) -> None:
    world = make_world(api)
    serial = unique("HOOK")
    sighting = {
        "serial": serial,
        "manufacturer": "some maker",
        "observed_at": ago(days=1),
        "place": "checkpoint 7",
        "circumstances": "seized",
    }
    opened = api.post("/api/v1/sightings", json=sighting).get_json()["discrepancy"]  # .opened
    note = {"action": "investigate", "note": "asked the border post for photos"}
    api.post(f"/api/v1/discrepancies/{opened['id']}/events", json=note)  # .updated
    world.receive([serial + "-R"])
    transfer = api.post(
        "/api/v1/transfers",
        json={
            "from": f"depot:{world.depot}",
            "to": f"depot:{world.other_depot}",
            "expected_by": ago(days=-2),
            "document_ref": unique("TRF"),
            "lines": [{"serial": serial + "-R"}],
        },
    ).get_json()
    receipt = {"received_at": ago(seconds=0), "lines": []}  # nothing arrived: a shortfall
    api.post(f"/api/v1/transfers/{transfer['id']}/receipt", json=receipt)  # transfer.received
    world.receive([serial + "-L"])
    for kind, extra in (
        ("loss", {"from": f"depot:{world.depot}"}),
        ("recovery", {"from": "lost", "to": f"depot:{world.depot}"}),  # weapon.recovered
    ):
        moved = api.post(
            "/api/v1/movements",
            json={
                "kind": kind,
                **extra,
                "occurred_at": ago(minutes=1),
                "case_ref": "CASE-HOOK",
                "lines": [{"serial": serial + "-L"}],
            },
        )
        assert moved.status_code == 201, moved.get_json()
    settings_ = app.extensions["inventory.settings"]
    session = app.extensions["inventory.sessions"]()
    try:  # audit.checkpoint, as the worker signs and publishes it
        context = Context(actor=operator("tests"), settings=settings_)
        run_write(session, context, worker.checkpoint_and_publish, lambda made, _uow: None)
    finally:
        session.close()

    checked: dict[str, int] = {}
    after: str | None = None
    while True:
        query = {"limit": 1000, **({"after": after} if after else {})}
        page = api.get("/api/v1/alerts", query_string=query).get_json()
        for alert in page["items"]:
            if alert["type"] not in document["webhooks"]:
                continue  # not offered to subscriptions, so never a webhook
            body = json.loads(delivery.webhook_body(alert["type"], *_event_row(alert)))
            post = document["webhooks"][alert["type"]]["post"]
            ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            schema = {"$ref": ref, "components": document["components"]}
            Draft202012Validator(schema, format_checker=FORMAT_CHECKER).validate(body)
            checked[alert["type"]] = checked.get(alert["type"], 0) + 1
        if len(page["items"]) < 1000:
            break
        after = page["next"]
    # log.uncosigned needs a witness that never cosigns past its grace: tests/test_transparency*
    # make it; here its schema is only checked by openapi-spec-validator.
    assert set(checked) >= set(subscriptions.EVENT_TYPES) - {"log.uncosigned"}, checked


def _event_row(alert: dict[str, Any]) -> tuple[datetime, str]:
    """The outbox row's occurred_at and payload, as the worker hands them to webhook_body."""
    return datetime.fromisoformat(alert["timestamp"]), json.dumps(alert["data"])


def test_the_guide_verification_example_accepts_a_delivery_and_refuses_a_forgery() -> None:
    guide = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text()
    [example] = re.findall(r"```python\n(.*?)```", guide, flags=re.DOTALL)
    namespace: dict[str, Any] = {}
    exec(compile(example, "docs/api.md", "exec"), namespace)  # the guide's code, as written
    verified_event = namespace["verified_event"]
    secret = subscriptions.new_secret()
    body = delivery.webhook_body("discrepancy.opened", datetime.now(UTC), '{"id": "x"}')
    headers = delivery.signed_headers(secret, str(uuid.uuid4()), datetime.now(UTC), body)
    assert verified_event(secret, body, headers)["data"] == {"id": "x"}
    assert verified_event(secret, body.replace(b'"x"', b'"y"'), headers) is None
    assert verified_event(subscriptions.new_secret(), body, headers) is None


# --- schemathesis, every check on -----------------------------------------------------------


@pytest.fixture(scope="module")
def schema(app: Flask) -> schemathesis.BaseSchema:
    loaded = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    return loaded


@pytest.fixture(scope="module")
def known(app: Flask, admin_token: str) -> tuple[str, dict[str, dict[str, str]]]:
    """A depot holding a received weapon and lot, and path parameters naming real things, so
    operations reading one thing also answer 200 (random ids only ever reach the 404)."""
    world = make_world(Api(app.test_client(), admin_token))
    serial, lot = unique("CONTRACT"), unique("LOT")
    receipt = world.receive([serial], {lot: 100}).get_json()
    ids = {line.get("serial") or line["lot_number"]: line for line in receipt["lines"]}
    weapon, lot_id = ids[serial]["weapon_id"], ids[lot]["lot_id"]
    return world.depot, {
        "GET /api/v1/depots/{code}": {"code": world.depot},
        "GET /api/v1/item-types/{code}": {"code": world.rifle},
        "GET /api/v1/movements/{movement_id}": {"movement_id": receipt["id"]},
        "GET /api/v1/weapons/{weapon_id}": {"weapon_id": weapon},
        "GET /api/v1/weapons/{weapon_id}/history": {"weapon_id": weapon},
        "GET /api/v1/lots/{lot_id}": {"lot_id": lot_id},
        "GET /api/v1/lots/{lot_id}/history": {"lot_id": lot_id},
    }


# Schema-valid input the API still refuses with 422 because JSON Schema cannot state the rule.
# A positive case's 422 must name only these fields in `errors`; any other 422 (or a 400, 413
# or 415) is a failure, as schemathesis's positive_data_acceptance would report it.
RULES_BEYOND_THE_SCHEMA = {
    "after": "cursors are opaque: only one the API gave out is valid",
    "Idempotency-Key": "a key promises uniqueness; the generator reuses one across requests",
    "holder": "a holder is kind:code naming a depot, unit, party, ...",
    "from": "a holder, as above",
    "to": "a holder, as above",
    "depot": "a depot code that exists",
    "depots": "only a clerk's token is scoped to depots, and they must exist",
    "lines": "each line gives exactly one of weapon, serial, lot, ... (a rule across fields)",
    "url": "an http(s) URL of a public address",
    "serial": "markings refuse control and invisible characters",
    "manufacturer": "markings refuse control and invisible characters",
    "lot_number": "markings refuse control and invisible characters",
    "item_type": "an item type code that exists",
    "seen": "each weapon is named one way: weapon_id, or serial with manufacturer",
    "not_seen": "each weapon is named one way: weapon_id, or serial with manufacturer",
    "kind": "a movement kind needs its own fields (a loss its reason, an issue its unit)",
    "reverses": "a reversal names the movement it reverses (a rule across fields)",
    "due_back_at": "an issue says when it is due back (a rule across fields)",
    "reason": "a loss or destruction says why (a rule across fields)",
    "case_ref": "a loss names its case (a rule across fields)",
    "certificate_ref": "a destruction names its certificate (a rule across fields)",
    "since": "a time between 1900 and 9999 in UTC (a schema format cannot say so)",
    "until": "a time between 1900 and 9999 in UTC (a schema format cannot say so)",
    "as_of": "a time between 1900 and 9999 in UTC (a schema format cannot say so)",
    "tree_size": "a size the transparency log has reached",
    "first": "a size the transparency log has reached",
    "second": "a size the transparency log has reached",
    "seq": "a record the transparency log has integrated",
    "start": "a range of at most 1,000 integrated records",
    "end": "a range of at most 1,000 integrated records",
    "vkey": "a C2SP note verifier key: <name>+<8 hex digits>+<base64 key>",
    "cosignature": "a C2SP tlog-cosignature line by a registered witness",
    "observed_at": "not in the future, by the server's clock",
    "occurred_at": "not in the future, by the server's clock",
    "received_at": "not in the future, nor before the dispatch",
    "checked_at": "not in the future, by the server's clock",
    "expected_by": "after the dispatch",
    "end_user_ref": "required when the transfer goes to a party (a rule across fields)",
    "delivery_verification_ref": "required to confirm delivery to a party",
    "movement_id": "resolving a discrepancy by a movement needs one that settles it",
}
ACCEPTED = {401, 403, 404, 409}


def accepts_schema_valid_input(status: int, response: Any) -> None:
    if status < 400 or status in ACCEPTED:
        return
    body = response.json() if status == 422 else {}
    named = set(body.get("errors") or {})
    assert status == 422 and named and named <= set(RULES_BEYOND_THE_SCHEMA), (
        f"schema-valid input refused: {status} {response.text[:300]}"
    )


def _run(
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    headers: dict[str, str],
    fixed: dict[str, Any],
) -> tuple[int, str | None]:
    sent = 0

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    def run(case: schemathesis.Case) -> None:
        nonlocal sent
        sent += 1
        response = case.call(headers=headers)
        # Every check schemathesis has; positive_data_acceptance is replaced by the stricter
        # accepts_schema_valid_input below, which allows a 422 only for the rules it names.
        case.validate_response(
            response, headers=headers, excluded_checks=[positive_data_acceptance]
        )
        if mode is GenerationMode.POSITIVE:
            accepts_schema_valid_input(response.status_code, response)

    try:
        run()
    except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collect all, report together
        return sent, f"{operation.label} [{mode.value}]: {exc}"
    return sent, None


@pytest.mark.parametrize("role", ROLES)
def test_schemathesis_finds_nothing_with_every_check(
    api: Api,
    schema: schemathesis.BaseSchema,
    known: tuple[str, dict[str, dict[str, str]]],
    role: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Fuzzed webhook hosts must not reach DNS: they are judged by what they resolve to.
    monkeypatch.setattr(webhook_urls, "resolve_host", lambda host: [])
    depot, paths = known
    token = (
        api.token if role == "admin" else api.token_for(role, [depot] if role == "clerk" else [])
    )
    headers = {"Authorization": f"Bearer {token}"}
    throwaway = api.post("/api/v1/tokens", json={"name": unique("contract"), "role": "monitor"})
    revocable = {"token_id": throwaway.get_json()["id"]}
    failures: list[str] = []
    sent = 0
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        runs: list[tuple[GenerationMode, dict[str, Any]]] = [
            (GenerationMode.POSITIVE, {}),
            (GenerationMode.NEGATIVE, {}),
        ]
        if operation.label == "DELETE /api/v1/tokens/{token_id}":
            # Revoke a throwaway token, never the one the run uses.
            runs = [(mode, {"path_parameters": revocable}) for mode, _ in runs]
        if operation.label in paths:
            runs.append((GenerationMode.POSITIVE, {"path_parameters": paths[operation.label]}))
        for mode, fixed in runs:
            count, failure = _run(operation, mode, headers, fixed)
            sent += count
            if failure:
                failures.append(failure)
    print(f"schemathesis {role}: {sent} requests")
    assert sent > 0
    assert not failures, "\n\n".join(failures)


def test_the_document_is_served_without_a_token(client: FlaskClient) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.get_json()["webhooks"]
