"""The accountability report as PDF (API and console): read back with pypdf, its figures are the
JSON report's for the same as-of time, with every unaccounted weapon and the audit head."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from pypdf import PdfReader

from inventory.services.report_pdf import ROWS, figure

from .conftest import Api, unique
from .console_helpers import Console, lose_at, receive_at
from .ledger_helpers import World, make_world


def pdf_text(data: bytes) -> list[str]:
    assert data.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(data))
    return [line.strip() for page in reader.pages for line in page.extract_text().splitlines()]


def section(lines: list[str], heading: str) -> dict[str, Any]:
    """The figures printed under `heading`: its rate, and per row label (weapons, rounds)."""
    starts = [i for i, line in enumerate(lines) if line.startswith(f"{heading}: ")]
    assert len(starts) == 1, f"{heading} is not printed once"
    rate = re.search(
        r"accountability rate ([\d.]+) % \(weapons\), ([\d.]+) % \(rounds\)", lines[starts[0]]
    )
    assert rate
    found: dict[str, Any] = {"rate": rate.group(1), "rounds_rate": rate.group(2)}
    rest = lines[starts[0] :]
    for label, name in ROWS:
        at = rest.index(label)
        found[name] = (rest[at + 1], rest[at + 2])
    return found


@pytest.fixture
def world(api: Api) -> World:
    world = make_world(api)
    kept, lost = [unique("AK") for _ in range(3)], [unique("AK")]
    receive_at(world, world.depot, kept + lost)
    world.receive([], lots={unique("LOT"): 1_440})
    lose_at(world, world.depot, lost)
    receive_at(world, world.other_depot, [unique("AK")])
    return world


def test_the_pdf_prints_the_json_reports_figures(api: Api, world: World) -> None:
    as_of = datetime.now(UTC).isoformat()
    query = {"depot": [world.depot, world.other_depot], "as_of": as_of}
    report = api.get("/api/v1/reports/accountability", query_string=query).get_json()
    response = api.get("/api/v1/reports/accountability", query_string={**query, "format": "pdf"})
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    lines = pdf_text(response.data)
    assert f"As of {report['as_of']}" in lines
    accounts = [(f"Depot {d['depot']}", d) for d in report["depots"]]
    for heading, account in [*accounts, ("All depots", report["totals"])]:
        printed = section(lines, heading)
        assert printed["rate"] == f"{account['accountability_rate'] * 100:.2f}"
        assert printed["rounds_rate"] == f"{account['rounds_accountability_rate'] * 100:.2f}"
        for _, name in ROWS:
            expected = (figure(account["weapons"][name]), figure(account["ammunition"][name]))
            assert printed[name] == expected, (heading, name)
    unaccounted = report["totals"]["weapons"]["unaccounted"]
    assert unaccounted >= 1
    assert f"Unaccounted weapons ({unaccounted})" in lines
    head = api.get("/api/v1/audit/verify").get_json()["head"]
    text = " ".join(lines)
    assert f"seq {head['seq']}" in text and head["hash"][:40] in text.replace(" ", "")


def test_the_console_serves_the_same_pdf_and_csv(app: Flask, api: Api, world: World) -> None:
    console = Console.signed_in(app, api.token_for("clerk", [world.depot]))
    pdf = console.get("/console/report?format=pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    lines = pdf_text(pdf.data)
    assert section(lines, f"Depot {world.depot}")["lost"][0] == "1"
    assert not any(world.other_depot in line for line in lines)  # a clerk's scope, on paper too
    csv_text = console.get("/console/report?format=csv").get_data(as_text=True)
    assert csv_text.startswith("as_of,depot,") and world.depot in csv_text
    assert world.other_depot not in csv_text
