"""The demo scenario a newcomer sees on `make run`: loaded through the use cases, idempotent, and
leaving the planted story on the books with an audit log that verifies."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from inventory import create_app, demo
from inventory.clock import utcnow
from inventory.db.models import Weapon
from inventory.services import audit_log
from inventory.settings import Settings

from .conftest import create_database, drop_database, make_settings

SCALE = 0.2  # a fifth of every batch (at least 40 each): the whole story, in about a second


@dataclass
class Demo:
    client: FlaskClient
    tokens: dict[str, str]
    settings: Settings
    sessions: Any

    def get(self, path: str, role: str = "auditor", **query: Any) -> Any:
        response = self.client.get(
            path, query_string=query, headers={"Authorization": f"Bearer {self.tokens[role]}"}
        )
        assert response.status_code == 200, (path, response.get_json())
        return response.get_json()


@pytest.fixture(scope="module")
def loaded(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The demo scenario on a database of its own (its depot codes are fixed)."""
    tmp_path = tmp_path_factory.mktemp("demo")
    url = create_database(backend, tmp_path)
    settings = make_settings(url, tmp_path)
    app = create_app({"SETTINGS": settings})
    sessions = app.extensions["inventory.sessions"]
    session = sessions()
    try:
        scenario = demo.seed.read("demo", utcnow(), scale=SCALE)
        report = demo.seed.load(session, settings, scenario)
        assert report.loaded and report.weapons == scenario.weapon_total()
        tokens = demo.prepare(session, settings)
    finally:
        session.close()
    yield Demo(app.test_client(), tokens, settings, sessions)
    app.extensions["inventory.engine"].dispose()
    drop_database(url)


def test_a_second_load_does_nothing(loaded: Demo) -> None:
    session = loaded.sessions()
    try:
        before = session.scalar(select(func.count()).select_from(Weapon))
        again = demo.load_scenario(session, loaded.settings)
        assert not again.loaded
        assert session.scalar(select(func.count()).select_from(Weapon)) == before
    finally:
        session.close()


def test_overdue_issue_is_on_the_books_with_the_unit(loaded: Demo) -> None:
    weapons = loaded.get("/api/v1/weapons", holder="unit:6-RECON-CO")["items"]
    assert sorted(w["serial"] for w in weapons) == [
        "KA94-01009",
        "KA94-01010",
        "KA94-01011",
        "KA94-01012",
        "KP79-01001",
        "KP79-01002",
        "KR90-00101",
    ]


def test_the_reported_loss_is_an_open_discrepancy(loaded: Demo) -> None:
    (pistol,) = loaded.get("/api/v1/weapons", serial="RM77-03001")["items"]
    assert pistol["status"] == "lost"


def test_the_audit_log_verifies(loaded: Demo) -> None:
    session = loaded.sessions()
    try:
        assert audit_log.verify(session).ok
    finally:
        session.close()


def test_clerk_token_is_scoped_to_north(loaded: Demo) -> None:
    north = loaded.get("/api/v1/holdings", role="clerk", holder="depot:D-NORTH")
    assert north["weapons"]
    response = loaded.client.get(
        "/api/v1/holdings",
        query_string={"holder": "depot:D-SOUTH"},
        headers={"Authorization": f"Bearer {loaded.tokens['clerk']}"},
    )
    assert response.status_code == 403
