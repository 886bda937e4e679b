"""The audit log over HTTP: one record per write, who may read it, verification, and signed
checkpoints that a monitor can check without our code."""

from __future__ import annotations

import base64
import hashlib
import stat
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flask import Flask

from inventory.services import audit_log

from .conftest import Api, unique
from .test_foundation import assert_problem

HEX64 = 64


def records(api: Api, token: str | None = None, **query: Any) -> list[dict[str, Any]]:
    """Every record matching `query`, walking the pages."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = api.get(
            "/api/v1/audit",
            token=token,
            query_string={**query, **({"after": cursor} if cursor else {})},
        )
        assert page.status_code == 200, page.get_json()
        found += page.get_json()["items"]
        if not (cursor := page.get_json()["next"]):
            return found


def test_each_write_appends_one_record_with_what_changed(api: Api) -> None:
    auditor = api.token_for("auditor")
    code = unique("D")
    created = api.post(
        "/api/v1/depots",
        json={"code": code, "name": "North", "country": "XX"},
        headers={"X-Request-ID": f"req-{code}"},
    )
    assert created.status_code == 201
    [record] = records(api, auditor, subject=f"depot:{code}")
    assert record["action"] == "depot.create" and record["client_request_id"] == f"req-{code}"
    assert record["request_id"] == created.headers["X-Request-ID"] != f"req-{code}"
    assert record["actor"] == "test admin" and record["role"] == "admin"
    assert record["token_id"] is not None
    assert record["changes"] == {"code": code, "name": "North", "country": "XX"}
    assert len(record["hash"]) == len(record["prev_hash"]) == HEX64
    assert record["recorded_at"].endswith("+00:00")
    # A refused write leaves no record.
    api.post("/api/v1/depots", json={"code": code, "name": "again"})
    assert len(records(api, auditor, subject=f"depot:{code}")) == 1


def test_filters_and_pages_walk_the_log_in_order(api: Api) -> None:
    codes = [unique("AU") for _ in range(3)]
    for code in codes:
        api.post("/api/v1/depots", json={"code": code, "name": code})
    mine = records(api, limit=1, action="depot.create", actor="test admin")
    seqs = [r["seq"] for r in mine]
    assert seqs == sorted(set(seqs), reverse=True)  # newest first unless asked otherwise
    oldest_first = records(api, limit=2, order="asc", action="depot.create", actor="test admin")
    assert [r["seq"] for r in oldest_first] == sorted(seqs)
    assert {f"depot:{c}" for c in codes} <= {r["subject"] for r in mine}
    assert all(r["action"] == "depot.create" for r in mine)
    assert records(api, actor=unique("nobody")) == []


def test_only_auditors_and_admins_read_the_log(api: Api, depot: str) -> None:
    assert api.get("/api/v1/audit", token=api.token_for("auditor")).status_code == 200
    for role, depots in (("clerk", [depot]), ("monitor", None)):
        assert_problem(api.get("/api/v1/audit", token=api.token_for(role, depots)), 403)


def test_verify_reports_the_whole_chain(api: Api, depot: str) -> None:
    body = api.get("/api/v1/audit/verify", token=api.token_for("monitor")).get_json()
    assert body["ok"] is True and body["length"] >= 1
    assert body["head"]["seq"] == body["length"] and len(body["head"]["hash"]) == HEX64
    assert_problem(api.get("/api/v1/audit/verify", token=api.token_for("clerk", [depot])), 403)


def test_a_checkpoint_verifies_outside_our_code(api: Api) -> None:
    auditor, monitor = api.token_for("auditor"), api.token_for("monitor")
    assert_problem(api.post("/api/v1/audit/checkpoints", token=auditor), 403)
    made = api.post("/api/v1/audit/checkpoints")
    assert made.status_code == 201
    checkpoint = made.get_json()
    key = api.get("/api/v1/audit/public-key", token=monitor).get_json()
    assert key["algorithm"] == "Ed25519"

    # What a monitor does, from the documented format alone:
    raw = base64.b64decode(key["public_key"])
    assert key["key_id"] == checkpoint["key_id"] == hashlib.sha256(raw).hexdigest()[:16]
    message = (
        f"stockpile-audit-checkpoint/1\n{checkpoint['seq']}\n{checkpoint['hash']}\n"
        f"{checkpoint['at']}\n"
    ).encode("ascii")
    Ed25519PublicKey.from_public_bytes(raw).verify(
        base64.b64decode(checkpoint["signature"]), message
    )  # raises InvalidSignature if not
    from_pem = serialization.load_pem_public_key(key["pem"].encode())
    assert from_pem.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == raw

    # The checkpoint covers the record it names, and is itself in the log and the list.
    [at_seq] = [r for r in records(api, auditor) if r["seq"] == checkpoint["seq"]]
    assert at_seq["hash"] == checkpoint["hash"]
    [recorded] = records(api, auditor, subject=f"audit_checkpoint:{checkpoint['seq']}")
    assert recorded["action"] == "audit.checkpoint" and recorded["changes"] == checkpoint
    assert recorded["seq"] > checkpoint["seq"]
    listed = api.get("/api/v1/audit/checkpoints", token=monitor, query_string={"limit": 1000})
    assert checkpoint in listed.get_json()["items"]


def test_a_repeated_checkpoint_request_is_replayed(api: Api) -> None:
    headers = {"Idempotency-Key": unique("cp")}
    first = api.post("/api/v1/audit/checkpoints", headers=headers)
    again = api.post("/api/v1/audit/checkpoints", headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.get_json() == again.get_json() and again.headers["Idempotent-Replayed"] == "true"


def test_the_signing_key_is_a_private_file_kept_across_requests(app: Flask, api: Api) -> None:
    first = api.get("/api/v1/audit/public-key").get_json()["key_id"]
    path = app.extensions["inventory.settings"].signing_key_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in path.read_bytes()
    assert api.get("/api/v1/audit/public-key").get_json()["key_id"] == first


def test_progress_is_told_about_every_record(app: Flask, depot: str) -> None:
    session = app.extensions["inventory.sessions"]()
    try:
        told: list[int] = []
        audit_log.read_snapshot(session)
        verdict = audit_log.verify(session, progress=told.append)
        assert verdict.ok and sum(told) == verdict.length > 0
    finally:
        session.close()
    batches: list[int] = []
    rows = audit_log._counting(iter(range(5)), batches.append, every=2)
    assert list(rows) == [0, 1, 2, 3, 4] and batches == [2, 2, 1]


def test_the_audit_endpoints_are_documented(client: Any) -> None:
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    for path in ("", "/verify", "/checkpoints", "/public-key"):
        assert f"/api/v1/audit{path}" in paths
