"""Schemathesis fuzzing of every operation in /api/v1/openapi.json, in-process over WSGI, with the
token of each role: admin, a clerk of one depot, an auditor and a monitor.

Each operation gets a few schema-valid (positive) and a few schema-violating (negative) requests;
operations that read one weapon, lot, movement, depot or item type also read a real one (random
ids only reach the 404), so their 200 bodies are checked against the schema too.
Every reply must be free of 5xx, match its documented response schema, and every error reply
must be an RFC 9457 problem (application/problem+json with type, title, status and detail).
All failures of a run are collected and reported together, one entry per operation and mode.

A second run sets parameters at their edges, which schema-driven generation rarely reaches:
`after` cursors forged from every kind of JSON value (right list and order, wrong types, huge and
nested values, NUL), date-times at years 1, 1899, 1900, 9999 and 10000 with offsets of +-14:00,
and integers at the limits of 32 and 64 bits and of Python's 4,300-digit int parsing; none may
answer 5xx.

Bounded by default (`EXAMPLES` per operation, mode and role, derandomized so runs repeat);
`INVENTORY_SOAK=1` raises the counts. The number of requests sent is printed (`pytest -s`).
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance

from inventory.services import webhook_urls

from .conftest import Api, unique
from .ledger_helpers import make_world

SOAK = os.environ.get("INVENTORY_SOAK") == "1"
EXAMPLES = 60 if SOAK else 3
ROLES = ("admin", "clerk", "auditor", "monitor")
PROBLEM_FIELDS = {"type": str, "title": str, "status": int, "detail": str}
TOTALS: dict[str, int] = {}


def problem_json(_ctx: Any, response: schemathesis.Response, _case: Any) -> None:
    """Every 4xx/5xx reply is application/problem+json carrying type, title, status, detail."""
    if response.status_code < 400:
        return
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.startswith("application/problem+json"), (
        f"{response.status_code} with content type {content_type!r}: {response.text[:200]!r}"
    )
    body = response.json()
    for name, kind in PROBLEM_FIELDS.items():
        assert isinstance(body.get(name), kind), f"problem without {name}: {body!r}"
    assert body["status"] == response.status_code, body


CHECKS = [not_a_server_error, response_schema_conformance, problem_json]


@pytest.fixture(scope="module")
def schema(app: Flask) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


@dataclass
class Stock:
    """A depot holding a received weapon and lot, and the path parameters that name them."""

    depot: str
    known: dict[str, dict[str, str]]


@pytest.fixture(scope="module")
def stock(app: Flask, admin_token: str) -> Stock:
    world = make_world(Api(app.test_client(), admin_token))
    serial, lot = unique("FUZZ"), unique("LOT")
    receipt = world.receive([serial], {lot: 100}).get_json()
    ids = {line.get("serial") or line["lot_number"]: line for line in receipt["lines"]}
    weapon, lot_id = ids[serial]["weapon_id"], ids[lot]["lot_id"]
    return Stock(
        world.depot,
        {
            "GET /api/v1/depots/{code}": {"code": world.depot},
            "GET /api/v1/item-types/{code}": {"code": world.rifle},
            "GET /api/v1/movements/{movement_id}": {"movement_id": receipt["id"]},
            "GET /api/v1/weapons/{weapon_id}": {"weapon_id": weapon},
            "GET /api/v1/weapons/{weapon_id}/history": {"weapon_id": weapon},
            "GET /api/v1/lots/{lot_id}": {"lot_id": lot_id},
            "GET /api/v1/lots/{lot_id}/history": {"lot_id": lot_id},
        },
    )


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Webhook URLs are judged by what their host resolves to; fuzzed hosts must not hit DNS."""
    monkeypatch.setattr(webhook_urls, "resolve_host", lambda host: [])
    yield


def _raise(error: Exception) -> NoReturn:
    raise error


def token_of(api: Api, role: str, depot: str) -> str:
    if role == "admin":
        return api.token
    return api.token_for(role, [depot] if role == "clerk" else [])


def fuzz(
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    headers: dict[str, str],
    fixed: dict[str, Any],
) -> tuple[int, str | None]:
    """Send up to EXAMPLES generated requests; return how many were sent and the first failure."""
    sent = 0

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # report the raw failure: shrinking costs time
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    def run(case: schemathesis.Case) -> None:
        nonlocal sent
        response = case.call(headers=headers)
        sent += 1
        case.validate_response(response, checks=CHECKS, headers=headers)

    try:
        run()
    except Exception as exc:  # noqa: BLE001 - every failure is collected, then reported together
        return sent, f"{operation.label} [{mode.value}]: {exc}"
    return sent, None


@pytest.mark.parametrize("role", ROLES)
def test_every_operation_survives_fuzzing(
    api: Api, schema: schemathesis.BaseSchema, stock: Stock, backend: str, role: str, no_dns: None
) -> None:
    headers = {"Authorization": f"Bearer {token_of(api, role, stock.depot)}"}
    # DELETE /tokens gets a throwaway token, so the fuzz never revokes the tokens it runs with.
    throwaway = api.post("/api/v1/tokens", json={"name": unique("fuzz"), "role": "monitor"})
    revocable = {"token_id": throwaway.get_json()["id"]}
    failures: list[str] = []
    sent = 0
    for result in schema.get_all_operations():
        # An operation schemathesis cannot read is a documentation bug: raise it.
        operation = result.ok() if isinstance(result, Ok) else _raise(result.err())
        runs: list[tuple[GenerationMode, dict[str, Any]]] = [
            (GenerationMode.POSITIVE, {}),
            (GenerationMode.NEGATIVE, {}),
        ]
        if operation.label == "DELETE /api/v1/tokens/{token_id}":
            runs = [(mode, {"path_parameters": revocable}) for mode, _ in runs]
        if operation.label in stock.known:
            # Random ids only ever reach the 404: also read real stock, so 200 bodies are checked.
            runs.append(
                (GenerationMode.POSITIVE, {"path_parameters": stock.known[operation.label]})
            )
        for mode, fixed in runs:
            count, failure = fuzz(operation, mode, headers, fixed)
            sent += count
            if failure:
                failures.append(failure)
    TOTALS[f"{backend}/{role}"] = sent
    print(f"fuzz {backend}/{role}: {sent} requests, total so far {sum(TOTALS.values())}")
    assert sent > 0
    assert not failures, "\n\n".join(failures)


EDGE_YEARS = ("0001", "1899", "1900", "1970", "9999")
EDGE_OFFSETS = ("+14:00", "-14:00", "Z", "+00:00", "-00:01", "+23:59")
EDGE_DATES = st.one_of(
    st.builds(
        lambda year, clock, offset: f"{year}-{clock}{offset}",
        st.sampled_from(EDGE_YEARS),
        st.sampled_from(("01-01T00:00:00", "12-31T23:59:59.999999", "02-29T12:00:00")),
        st.sampled_from(EDGE_OFFSETS),
    ),
    st.sampled_from(("10000-01-01T00:00:00Z", "9999-12-31T23:59:60Z", "0000-01-01T00:00:00Z")),
)
BIG = (2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 10**40, 10**300)
EDGE_INTS = st.one_of(
    st.sampled_from((0, -1, 1, *BIG, *(-n for n in BIG))).map(str),
    st.sampled_from(("9" * 4301, "-" + "9" * 5001, "1e999", "NaN", "0x10", " 7", "7.0")),
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False)
    | st.sampled_from(("", "\x00", "\ud800", "D-1", str(uuid.UUID(int=0)), "2026-01-01T00:00:00Z"))
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def as_cursor(value: object) -> str:
    text = json.dumps(value)
    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode().rstrip("=")


def edge_cursors(path: str) -> st.SearchStrategy[str]:
    """Cursors shaped like the API's ([path, order, key...]) with edge keys, any JSON, junk."""
    shaped = st.builds(
        lambda order, keys: as_cursor([path, order, *keys]),
        st.sampled_from(("asc", "desc", "sideways", None)),
        st.lists(JSON_VALUES, max_size=3),
    )
    return st.one_of(shaped, JSON_VALUES.map(as_cursor), st.text(max_size=50))


def edge_overrides(case: schemathesis.Case) -> st.SearchStrategy[dict[str, dict[str, Any]]]:
    """For each query parameter and top-level body field of an edgy kind, an edge value."""
    operation = case.operation
    query: dict[str, st.SearchStrategy[Any]] = {}
    for parameter in operation.definition.raw.get("parameters", []):
        if parameter.get("in") != "query":
            continue
        schema, name = parameter.get("schema", {}), parameter["name"]
        if name == "after":
            query[name] = edge_cursors(case.formatted_path)
        elif schema.get("format") == "date-time":
            query[name] = EDGE_DATES
        elif schema.get("type") == "integer":
            query[name] = EDGE_INTS
    body: dict[str, st.SearchStrategy[Any]] = {}
    if isinstance(case.body, dict):
        for name, schema in _body_properties(operation).items():
            if schema.get("format") == "date-time":
                body[name] = EDGE_DATES
            elif schema.get("type") == "integer":
                # json cannot write an int past Python's 4,300-digit limit: those go as text
                # (test_bad_input sends the raw 5,001-digit body)
                body[name] = EDGE_INTS.map(
                    lambda text: json.loads(text)
                    if text.lstrip("-").isdigit() and len(text) < 4300
                    else text
                )
    return st.fixed_dictionaries(
        {"query": st.fixed_dictionaries(query), "body": st.fixed_dictionaries(body)}
    )


def _body_properties(operation: schemathesis.APIOperation) -> dict[str, Any]:
    content = operation.definition.raw.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema", {})
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = operation.schema.raw_schema["components"]["schemas"][name]
    properties: dict[str, Any] = schema.get("properties", {})
    return properties


def has_edges(operation: schemathesis.APIOperation) -> bool:
    parameters = operation.definition.raw.get("parameters", [])
    edgy = [
        p
        for p in parameters
        if p.get("in") == "query"
        and (
            p["name"] == "after"
            or p.get("schema", {}).get("format") == "date-time"
            or p.get("schema", {}).get("type") == "integer"
        )
    ]
    fields = _body_properties(operation).values()
    return bool(edgy) or any(
        f.get("format") == "date-time" or f.get("type") == "integer" for f in fields
    )


def fuzz_edges(
    operation: schemathesis.APIOperation, headers: dict[str, str], fixed: dict[str, Any]
) -> tuple[int, str | None]:
    """Send generated requests with edge values set; return how many and the first failure."""
    sent = 0

    @settings(
        max_examples=EXAMPLES * 5,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        nonlocal sent
        strategy = operation.as_strategy(generation_mode=GenerationMode.POSITIVE, **fixed)
        case = data.draw(strategy)
        edges = data.draw(edge_overrides(case))
        case.query = {**(case.query or {}), **edges["query"]}
        if edges["body"]:
            case.body = {**case.body, **edges["body"]}
        response = case.call(headers=headers)
        sent += 1
        case.validate_response(response, checks=[not_a_server_error, problem_json], headers=headers)

    try:
        run()
    except Exception as exc:  # noqa: BLE001 - every failure is collected, then reported together
        return sent, f"{operation.label} [edges]: {exc}"
    return sent, None


def test_parameters_at_their_edges_never_make_a_5xx(
    api: Api, schema: schemathesis.BaseSchema, stock: Stock, backend: str, no_dns: None
) -> None:
    headers = {"Authorization": f"Bearer {api.token}"}
    failures: list[str] = []
    sent = 0
    for result in schema.get_all_operations():
        operation = result.ok() if isinstance(result, Ok) else _raise(result.err())
        if not has_edges(operation) or operation.label.startswith("DELETE"):
            continue
        known = stock.known.get(operation.label)
        count, failure = fuzz_edges(operation, headers, {"path_parameters": known} if known else {})
        sent += count
        if failure:
            failures.append(failure)
    print(f"fuzz edges {backend}: {sent} requests")
    assert sent > 0
    assert not failures, "\n\n".join(failures)
