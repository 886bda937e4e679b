"""What every response carries (nosniff, no-store), the client address in the access log, and
X-Forwarded-For trusted only as far as Settings.trusted_proxies says."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask

from inventory.app import create_app

from .conftest import Api, make_settings, unique
from .test_subscriptions import subscribe


def assert_guarded(response: object, cache: str = "no-store") -> None:
    headers = response.headers  # type: ignore[attr-defined]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == cache


def test_secrets_and_records_are_never_cached(api: Api) -> None:
    issued = api.post("/api/v1/tokens", json={"name": unique("t"), "role": "auditor"})
    assert issued.status_code == 201 and "token" in issued.get_json()
    assert_guarded(issued)
    monitor = api.token_for("monitor")
    created = subscribe(api, monitor)
    assert created.status_code == 201 and created.get_json()["secret"].startswith("whsec_")
    assert_guarded(created)
    for path in ("/api/v1/depots", "/api/v1/tokens", "/healthz", "/api/v1/openapi.json"):
        answer = api.get(path)
        assert answer.status_code == 200, path
        assert_guarded(answer)


def test_errors_carry_the_headers_too(api: Api) -> None:
    assert_guarded(api.get("/api/v1/depots", token="nope"))  # 401
    assert_guarded(api.get("/api/v1/no-such-thing"))  # 404
    too_big = api.post(
        "/api/v1/depots", data=b"x" * (9 * 1024 * 1024), content_type="application/json"
    )  # 413
    assert too_big.status_code == 413
    assert_guarded(too_big)


def test_the_access_log_names_the_client(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="inventory.access"):
        api.get("/api/v1/depots", environ_base={"REMOTE_ADDR": "198.51.100.7"})
    (line,) = [r for r in caplog.records if r.name == "inventory.access"]
    assert line.client == "198.51.100.7"  # type: ignore[attr-defined]


def client_seen(app: Flask, forwarded: str, caplog: pytest.LogCaptureFixture) -> str:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="inventory.access"):
        app.test_client().get(
            "/healthz",
            headers={"X-Forwarded-For": forwarded},
            environ_base={"REMOTE_ADDR": "10.0.0.2"},
        )
    (line,) = [r for r in caplog.records if r.name == "inventory.access"]
    return str(line.client)  # type: ignore[attr-defined]


def test_x_forwarded_for_is_trusted_only_as_far_as_configured(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base = make_settings(database_url, tmp_path)
    direct = create_app({"SETTINGS": base})
    behind_one = create_app({"SETTINGS": replace(base, trusted_proxies=1)})
    try:
        # served directly, the header is the client's own claim and is ignored
        assert client_seen(direct, "203.0.113.9", caplog) == "10.0.0.2"
        # behind one proxy, its last entry is what the proxy saw; earlier ones are claims
        assert client_seen(behind_one, "1.2.3.4, 203.0.113.9", caplog) == "203.0.113.9"
    finally:
        direct.extensions["inventory.engine"].dispose()
        behind_one.extensions["inventory.engine"].dispose()
