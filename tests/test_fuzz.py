"""Schemathesis fuzzing of every operation in /api/v1/openapi.json, in-process over WSGI, with the
token of each role: admin, a clerk of one depot, an auditor and a monitor.

Each operation gets a few schema-valid (positive) and a few schema-violating (negative) requests;
operations that read one weapon, lot, movement, depot or item type also read a real one (random
ids only reach the 404), so their 200 bodies are checked against the schema too.
Every reply must be free of 5xx, match its documented response schema, and every error reply
must be an RFC 9457 problem (application/problem+json with type, title, status and detail).
All failures of a run are collected and reported together, one entry per operation and mode.

Bounded by default (`EXAMPLES` per operation, mode and role, derandomized so runs repeat);
`INVENTORY_SOAK=1` raises the counts. The number of requests sent is printed (`pytest -s`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance

from inventory.services import subscriptions

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
    monkeypatch.setattr(subscriptions, "resolve_host", lambda host: [])
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
