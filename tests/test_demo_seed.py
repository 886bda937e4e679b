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
from inventory.db.models import Weapon
from inventory.services import audit_log
from inventory.settings import Settings

from .conftest import create_database, drop_database, make_settings


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
        tokens = demo.prepare(session, settings)  # what `make run` calls on first start
    finally:
        session.close()
    session = sessions()
    try:
        assert session.scalar(select(func.count()).select_from(Weapon)) == 5_000
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


def test_the_reported_loss_is_on_the_books(loaded: Demo) -> None:
    (pistol,) = loaded.get("/api/v1/weapons", serial="RM77-03001")["items"]
    assert pistol["status"] == "lost"


# Each planted story, as the accountability report must show it: depot -> discrepancy kinds.
PLANTED = {
    "D-NORTH": {"return_overdue"},  # 6th Recon Company's patrol kit, due back 60 days ago
    "D-SOUTH": {"receipt_shortfall", "sighting_outside_custody"},  # short transfer; the PKM
    "D-EAST": {"count_variance"},  # two crates of 7.62x54R short at the stocktake
    "D-CAPITAL": {"end_use_verification_overdue", "reported_loss"},  # the export; the pistol
}


def test_the_accountability_report_lists_each_planted_discrepancy(loaded: Demo) -> None:
    report = loaded.get("/api/v1/reports/accountability")
    by_depot = {row["depot"]: row for row in report["depots"]}
    for depot, kinds in PLANTED.items():
        open_kinds = {kind for kind, n in by_depot[depot]["open_discrepancies"].items() if n}
        assert kinds <= open_kinds, (depot, by_depot[depot]["open_discrepancies"])
    assert by_depot["D-NORTH"]["weapons"]["unaccounted"] >= 7  # four rifles, 2 PKM, a launcher
    assert by_depot["D-SOUTH"]["weapons"]["unaccounted"] >= 4  # three rifles and the PKM
    assert report["totals"]["accountability_rate"] < 1
    csv = loaded.client.get(
        "/api/v1/reports/accountability",
        query_string={"format": "csv"},
        headers={"Authorization": f"Bearer {loaded.tokens['auditor']}"},
    )
    assert csv.status_code == 200
    assert "D-NORTH" in csv.get_data(as_text=True)


def test_nothing_else_is_flagged(loaded: Demo) -> None:
    items = loaded.get("/api/v1/discrepancies", limit=1000)["items"]
    assert {d["kind"] for d in items} == set().union(*PLANTED.values())


def test_the_sighted_weapon_traces_to_its_depot(loaded: Demo) -> None:
    trace = loaded.get("/api/v1/trace", role="monitor", serial="RP86-00512")
    (candidate,) = trace["items"]
    assert candidate["last_accountable_holder"]["holder"] == "depot:D-SOUTH"


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


def csv_rows(loaded: Demo, **query: Any) -> list[dict[str, str]]:
    import csv
    import io

    response = loaded.client.get(
        "/api/v1/reports/accountability",
        query_string={"format": "csv", **query},
        headers={"Authorization": f"Bearer {loaded.tokens['auditor']}"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_d_east_rounds_rate_shows_the_short_count_its_weapons_rate_does_not(loaded: Demo) -> None:
    report = loaded.get("/api/v1/reports/accountability", depot="D-EAST")
    (east,) = report["depots"]
    rounds = east["ammunition"]
    assert rounds["unaccounted"] >= 2_880  # the two short crates of 7.62x54R
    assert east["rounds_accountability_rate"] < 1
    assert east["rounds_accountability_rate"] == round(
        1 - rounds["unaccounted"] / rounds["on_books"], 4
    )
    assert east["accountability_rate"] == 1.0  # every weapon is where the books say
    (row,) = [r for r in csv_rows(loaded) if r["depot"] == "D-EAST"]
    assert float(row["rounds_accountability_rate"]) == east["rounds_accountability_rate"]
    assert float(row["accountability_rate"]) == east["accountability_rate"]


def test_every_csv_column_is_in_the_data_dictionary_and_the_docs(loaded: Demo) -> None:
    from pathlib import Path

    rows = csv_rows(loaded)
    dictionary = csv_rows(loaded, dictionary="1")
    assert [d["column"] for d in dictionary] == list(rows[0])
    assert all(d["definition"].strip() for d in dictionary)
    docs = (Path(__file__).resolve().parents[1] / "docs" / "design.md").read_text()
    assert [c for c in rows[0] if f"`{c}`" not in docs] == []
    refused = loaded.client.get(
        "/api/v1/reports/accountability",
        query_string={"dictionary": "1"},
        headers={"Authorization": f"Bearer {loaded.tokens['auditor']}"},
    )
    assert refused.status_code == 422


def test_the_trace_dates_the_holder_by_when_the_movement_happened(loaded: Demo) -> None:
    trace = loaded.get("/api/v1/trace", role="monitor", serial="RP86-00512")
    (candidate,) = trace["items"]
    holder = candidate["last_accountable_holder"]
    step = next(s for s in candidate["chain"] if s["movement_id"] == holder["movement_id"])
    assert holder["since"] == step["occurred_at"] and holder["recorded_at"] == step["recorded_at"]
    # Received in the 1980s, posted when the demo was loaded.
    assert holder["since"] < "2000" < holder["recorded_at"]


def test_summaries_name_weapons_one_way_and_give_no_microseconds(loaded: Demo) -> None:
    import re

    items = loaded.get("/api/v1/discrepancies", limit=1000)["items"]
    summaries = [d["summary"] for d in items]
    assert not [s for s in summaries if re.search(r"\d\d:\d\d:\d\d\.\d", s)], summaries
    assert not [s for s in summaries if re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", s)]
    weapons = loaded.get("/api/v1/weapons", holder="unit:6-RECON-CO")["items"]
    rifle = next(w for w in weapons if w["serial"] == "KA94-01009")
    label = f"weapon {rifle['item_type']} {rifle['manufacturer']} KA94-01009"
    assert any(label in s for s in summaries), summaries
    pistol = loaded.get("/api/v1/weapons", serial="RM77-03001")["items"][0]
    assert any(
        f"weapon {pistol['item_type']} {pistol['manufacturer']} RM77-03001" in s for s in summaries
    ), summaries
