"""Driving the console through Flask's test client as a browser would: sign in with a token,
read pages, post forms carrying the page's CSRF token."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from .conftest import unique
from .ledger_helpers import World, ago

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page: Any) -> str:
    found = CSRF.search(page.get_data(as_text=True))
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


@dataclass
class Console:
    client: FlaskClient

    @classmethod
    def signed_in(cls, app: Flask, token: str, base_url: str = "http://localhost") -> Console:
        console = cls(app.test_client())
        response = console.sign_in(token, base_url=base_url)
        assert response.status_code == 303, response.get_data(as_text=True)
        return console

    def sign_in(self, token: str, **kwargs: Any) -> Any:
        form = self.client.get("/console/sign-in", **kwargs)
        return self.client.post(
            "/console/sign-in", data={"token": token, "csrf_token": csrf_of(form)}, **kwargs
        )

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, **kwargs)

    def text(self, path: str) -> str:
        response = self.get(path)
        assert response.status_code == 200, response.get_data(as_text=True)[:2000]
        return str(response.get_data(as_text=True))

    def submit(self, page_path: str, action: str, data: dict[str, str]) -> Any:
        """Post a form found on `page_path`, with that page's CSRF token."""
        token = csrf_of(self.get(page_path))
        return self.client.post(action, data={**data, "csrf_token": token})


def receive_at(world: World, depot: str, serials: list[str]) -> None:
    lines = [
        {"weapon": {"serial": s, "manufacturer": world.maker, "item_type": world.rifle}}
        for s in serials
    ]
    response = world.api.post(
        "/api/v1/movements",
        json={
            "kind": "receipt",
            "from": f"party:{world.supplier}",
            "to": f"depot:{depot}",
            "occurred_at": ago(hours=1),
            "document_ref": unique("GRN"),
            "lines": lines,
        },
    )
    assert response.status_code == 201, response.get_json()


def lose_at(world: World, depot: str, serials: list[str]) -> list[str]:
    """Post a loss; return the ids of the reported_loss discrepancies it opened."""
    response = world.api.post(
        "/api/v1/movements",
        json={
            "kind": "loss",
            "from": f"depot:{depot}",
            "occurred_at": ago(minutes=5),
            "case_ref": unique("CASE"),
            "lines": [{"serial": s} for s in serials],
        },
    )
    assert response.status_code == 201, response.get_json()
    listed = world.api.get(
        "/api/v1/discrepancies", query_string={"depot": depot, "kind": "reported_loss"}
    ).get_json()["items"]
    return [d["id"] for d in listed]
