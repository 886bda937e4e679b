"""Test fixtures. Every test that takes `database_url` (directly or through `app`/`api`) runs on
SQLite and, when INVENTORY_TEST_DATABASE_URL points at a PostgreSQL server, on PostgreSQL too.

Each backend gets one freshly migrated database per test session; tests use unique random codes
so they never collide. Tests that must own a whole database (tampering with the audit log, say)
take `fresh_database_url`."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from inventory import create_app
from inventory.db import migrate
from inventory.domain.actors import operator
from inventory.services import checkpoints, tokens
from inventory.services.unit_of_work import Context, run_write
from inventory.settings import Settings

PG_URL = os.environ.get("INVENTORY_TEST_DATABASE_URL")
BACKENDS = ["sqlite", "postgresql"] if PG_URL else ["sqlite"]


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("CI") and not PG_URL:
        raise pytest.UsageError("CI must run on PostgreSQL too: set INVENTORY_TEST_DATABASE_URL")


def unique(prefix: str = "T") -> str:
    """A code no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10].upper()}"


def create_database(backend: str, tmp_path: Path) -> str:
    """Make an empty database and migrate it to head; return its URL."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / f'inventory-{uuid.uuid4().hex[:8]}.sqlite3'}"
    else:
        assert PG_URL
        name = f"inventory_test_{uuid.uuid4().hex[:12]}"
        server = create_engine(
            make_url(PG_URL).set(database="postgres"), isolation_level="AUTOCOMMIT"
        )
        with server.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        server.dispose()
        url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    return url


def drop_database(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return
    server = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
    server.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = create_database(backend, tmp_path_factory.mktemp(backend))
    yield url
    drop_database(url)


@pytest.fixture
def fresh_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    url = create_database(backend, tmp_path)
    yield url
    drop_database(url)


def make_settings(url: str, tmp_path: Path) -> Settings:
    settings = Settings(
        database_url=url,
        instance_dir=tmp_path,
        signing_key_path=tmp_path / "audit-signing-key.pem",
        log_level="WARNING",
    )
    checkpoints.init_key(settings)  # what `inventory keys init` does before a server's first start
    return settings


@pytest.fixture(scope="session")
def app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    flask_app = create_app(
        {"SETTINGS": make_settings(database_url, tmp_path_factory.mktemp("app"))}
    )
    yield flask_app
    flask_app.extensions["inventory.engine"].dispose()


class Api:
    """The test client with a bearer token: `api.post("/api/v1/depots", json=..., token=...)`."""

    def __init__(self, client: FlaskClient, token: str) -> None:
        self.client = client
        self.token = token

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        all_headers = {"Authorization": f"Bearer {token or self.token}", **(headers or {})}
        return self.client.open(path, method=method, headers=all_headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)

    def token_for(self, role: str, depots: list[str] | None = None) -> str:
        response = self.post(
            "/api/v1/tokens", json={"name": unique(role), "role": role, "depots": depots or []}
        )
        assert response.status_code == 201, response.get_json()
        return str(response.get_json()["token"])


@pytest.fixture(scope="session")
def admin_token(app: Flask) -> str:
    from inventory.domain.actors import operator
    from inventory.services import tokens
    from inventory.services.unit_of_work import Context, run_write

    session = app.extensions["inventory.sessions"]()
    try:
        outcome = run_write(
            session,
            Context(actor=operator("tests")),
            lambda uow: tokens.create_token(uow, "test admin", "admin", []),
            lambda issued, _uow: issued.secret,
        )
    finally:
        session.close()
    return str(outcome.body)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def api(client: FlaskClient, admin_token: str) -> Api:
    return Api(client, admin_token)


@pytest.fixture
def depot(api: Api) -> str:
    """A new depot's code."""
    code = unique("D")
    assert (
        api.post("/api/v1/depots", json={"code": code, "name": f"Depot {code}"}).status_code == 201
    )
    return code


@pytest.fixture
def own_app(fresh_database_url: str, tmp_path: Path) -> Iterator[tuple[Flask, Api, str]]:
    """An app over its own database with exactly one admin token (and its secret)."""
    flask_app = create_app({"SETTINGS": make_settings(fresh_database_url, tmp_path)})
    session = flask_app.extensions["inventory.sessions"]()
    try:
        issued = run_write(
            session,
            Context(actor=operator("tests")),
            lambda uow: tokens.create_token(uow, "only admin", "admin", []),
            lambda issued, _uow: (str(issued.token.id), issued.secret),
        ).body
    finally:
        session.close()
    yield flask_app, Api(flask_app.test_client(), issued[1]), issued[0]
    flask_app.extensions["inventory.engine"].dispose()
