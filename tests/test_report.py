"""The accountability report on a generated dataset (3 depots x 1,000 weapons with ammunition,
then issues, losses and a stocktake), on both databases: it reconciles with the ledger, matches
the holdings endpoint at any past time, scopes clerks, and opens in a spreadsheet."""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from inventory.cli import main

from .conftest import Api, unique
from .ledger_helpers import ago
from .test_foundation import assert_problem

WEAPONS_PER_DEPOT = 1_000
ROUNDS_PER_DEPOT = 100_000


@dataclass
class Dataset:
    api: Api
    depots: list[str]
    units: dict[str, str]
    serials: dict[str, list[str]]
    lots: dict[str, str]
    before_issues: str


def post(api: Api, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post(path, json=body)
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def movement(api: Api, **body: Any) -> dict[str, Any]:
    return post(api, "/api/v1/movements", {"occurred_at": ago(minutes=10), **body})


@pytest.fixture(scope="module")
def dataset(app: Any, admin_token: str) -> Dataset:
    api = Api(app.test_client(), admin_token)
    supplier, rifle, ammo, maker = unique("SUP"), unique("AKM"), unique("762"), unique("ARS")
    post(
        api, "/api/v1/parties", {"code": supplier, "name": "S", "country": "XX", "kind": "supplier"}
    )
    post(api, "/api/v1/item-types", {"code": rifle, "category": "weapon", "name": "AKM"})
    post(api, "/api/v1/item-types", {"code": ammo, "category": "ammunition", "name": "ball"})
    depots = [unique("D") for _ in range(3)]
    units: dict[str, str] = {}
    serials: dict[str, list[str]] = {}
    lots: dict[str, str] = {}
    for depot in depots:
        post(api, "/api/v1/depots", {"code": depot, "name": depot})
        units[depot] = unique("U")
        post(api, "/api/v1/units", {"code": units[depot], "name": "unit", "depot": depot})
        serials[depot] = [f"{depot}-{n:05d}" for n in range(WEAPONS_PER_DEPOT)]
        lots[depot] = unique("LOT")
        weapon_lines: list[dict[str, Any]] = [
            {"weapon": {"serial": s, "manufacturer": maker, "item_type": rifle}}
            for s in serials[depot]
        ]
        lot_line = {"lot": {"lot_number": lots[depot], "item_type": ammo}}
        movement(
            api,
            kind="receipt",
            **{"from": f"party:{supplier}", "to": f"depot:{depot}"},
            lines=[*weapon_lines, {**lot_line, "quantity": ROUNDS_PER_DEPOT}],
        )
    before_issues = datetime.now(UTC).isoformat()
    for depot in depots:
        issued = serials[depot][:100]
        movement(
            api,
            kind="issue",
            **{"from": f"depot:{depot}", "to": f"unit:{units[depot]}"},
            due_back_at=ago(days=-30),
            lines=[{"serial": s} for s in issued]
            + [{"lot_number": lots[depot], "quantity": 10_000}],
        )
        movement(
            api,
            kind="loss",
            **{"from": f"depot:{depot}"},
            case_ref=unique("CASE"),
            lines=[{"serial": s} for s in serials[depot][100:110]]
            + [{"lot_number": lots[depot], "quantity": 500}],
        )
        movement(
            api,
            kind="loss",
            **{"from": f"unit:{units[depot]}"},
            case_ref=unique("CASE"),
            lines=[{"serial": s} for s in issued[:5]],
        )
    # A stocktake in the first depot misses 7 weapons it holds.
    first = depots[0]
    stocktake = post(api, "/api/v1/stocktakes", {"depot": first})["id"]
    counted = [{"serial": s} for s in serials[first][117:]]
    counted.append({"lot_number": lots[first], "quantity": ROUNDS_PER_DEPOT - 10_500})
    post(api, f"/api/v1/stocktakes/{stocktake}/counts", {"lines": counted})
    closed = api.post(f"/api/v1/stocktakes/{stocktake}/close")
    assert len(closed.get_json()["missing"]) == 7, closed.get_json()
    return Dataset(api, depots, units, serials, lots, before_issues)


def report(data: Dataset, token: str | None = None, **query: Any) -> Any:
    query = {"depot": data.depots, **query}
    return data.api.get("/api/v1/reports/accountability", query_string=query, token=token)


def holdings(data: Dataset, holder: str, as_of: str | None = None) -> tuple[int, int]:
    query = {"holder": holder, **({"as_of": as_of} if as_of else {})}
    body = data.api.get("/api/v1/holdings", query_string=query).get_json()
    return len(body["weapons"]), sum(lot["quantity"] for lot in body["lots"])


def test_the_report_reconciles_with_the_ledger(dataset: Dataset) -> None:
    started = time.perf_counter()
    response = report(dataset)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert elapsed < 10, f"report took {elapsed:.1f}s"
    by_depot = {d["depot"]: d for d in body["depots"]}
    assert sorted(by_depot) == sorted(dataset.depots)
    for depot, account in by_depot.items():
        weapons, ammunition = account["weapons"], account["ammunition"]
        in_store, rounds_in_store = holdings(dataset, f"depot:{depot}")
        issued, rounds_issued = holdings(dataset, f"unit:{dataset.units[depot]}")
        assert (weapons["in_store"], weapons["issued"]) == (in_store, issued) == (890, 95)
        assert weapons["lost"] == 15 and weapons["in_transit"] == 0
        assert weapons["on_books"] + weapons["lost"] == WEAPONS_PER_DEPOT
        assert weapons["verified_within_policy"] == 890  # all arrived within the policy period
        assert (ammunition["in_store"], ammunition["issued"]) == (rounds_in_store, rounds_issued)
        assert ammunition["on_books"] + ammunition["lost"] == ROUNDS_PER_DEPOT
        assert ammunition["lost"] == ammunition["unaccounted"] == 500
        assert account["open_discrepancies"]["reported_loss"] == 16
    first = by_depot[dataset.depots[0]]
    assert first["weapons"]["unaccounted"] == 15 + 7  # lost, and counted missing
    assert first["open_discrepancies"]["count_missing"] == 7
    assert first["accountability_rate"] == round(1 - 22 / 985, 4)
    assert by_depot[dataset.depots[1]]["weapons"]["unaccounted"] == 15
    totals = body["totals"]
    assert totals["weapons"]["on_books"] + totals["weapons"]["lost"] == 3 * WEAPONS_PER_DEPOT
    assert totals["weapons"]["unaccounted"] == 22 + 15 + 15
    assert totals["ammunition"]["on_books"] == 3 * (ROUNDS_PER_DEPOT - 500)
    assert totals["open_discrepancies"]["reported_loss"] == 48


def test_as_of_a_past_time_matches_the_holdings_endpoint(dataset: Dataset) -> None:
    then = dataset.before_issues
    body = report(dataset, as_of=then).get_json()
    assert body["as_of"] == datetime.fromisoformat(then).isoformat(timespec="microseconds")
    for account in body["depots"]:
        depot = account["depot"]
        assert (account["weapons"]["in_store"], account["ammunition"]["in_store"]) == holdings(
            dataset, f"depot:{depot}", then
        )
        assert account["weapons"]["issued"] == account["weapons"]["lost"] == 0
        assert account["weapons"]["on_books"] == WEAPONS_PER_DEPOT
        assert account["weapons"]["unaccounted"] == 0 and account["accountability_rate"] == 1.0
        assert account["open_discrepancies"] == {}
    now = datetime.now(UTC).isoformat()
    assert report(dataset, as_of=now).get_json()["depots"] == report(dataset).get_json()["depots"]


def test_csv_opens_in_a_spreadsheet(dataset: Dataset) -> None:
    response = report(dataset, format="csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert sorted(row["depot"] for row in rows) == sorted(dataset.depots)
    first = next(row for row in rows if row["depot"] == dataset.depots[0])
    assert first["weapons_in_store"] == "890" and first["open_count_missing"] == "7"
    assert float(first["accountability_rate"]) == round(1 - 22 / 985, 4)


def test_clerks_see_their_depots_and_monitors_read(dataset: Dataset) -> None:
    mine = dataset.depots[1]
    clerk = dataset.api.token_for("clerk", [mine])
    own = dataset.api.get("/api/v1/reports/accountability", token=clerk).get_json()
    assert [d["depot"] for d in own["depots"]] == [mine]
    assert_problem(report(dataset, token=clerk), 403)
    monitor = dataset.api.token_for("monitor")
    assert report(dataset, token=monitor).status_code == 200
    assert_problem(report(dataset, depot=[unique("D")]), 404)
    assert_problem(report(dataset, as_of="2030-01-01T00:00"), 422)


def test_weapons_overdue_for_verification_are_unaccounted_once(dataset: Dataset) -> None:
    later = (datetime.now(UTC) + timedelta(days=91)).isoformat()  # the clock moved, books as now
    by_depot = {d["depot"]: d for d in report(dataset, as_of=later).get_json()["depots"]}
    for depot in dataset.depots:
        weapons = by_depot[depot]["weapons"]
        assert weapons["verified_within_policy"] == 0
        # In store and unverified (the 7 counted missing among them, not counted twice) + lost.
        assert weapons["unaccounted"] == 890 + 15


def test_the_cli_prints_the_same_report(
    dataset: Dataset, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INVENTORY_DATABASE_URL", app.extensions["inventory.settings"].database_url)
    depots = [arg for depot in dataset.depots for arg in ("--depot", depot)]
    printed = CliRunner().invoke(main, ["report", "accountability", *depots])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.output)["depots"] == report(dataset).get_json()["depots"]
    as_csv = CliRunner().invoke(main, ["report", "accountability", *depots, "--format", "csv"])
    assert len(list(csv.DictReader(io.StringIO(as_csv.output)))) == 3
    unknown = CliRunner().invoke(main, ["report", "accountability", "--depot", unique("D")])
    assert unknown.exit_code != 0 and "no depot" in unknown.output
