"""Importing a legacy weapons register: all rows or none, problems named by row and column."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from inventory import importer
from inventory.clock import utcnow
from inventory.domain.actors import operator
from inventory.services.unit_of_work import Context

from .conftest import Api, unique
from .ledger_helpers import World, make_world


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    session = app.extensions["inventory.sessions"]()
    yield session
    session.close()


def write_register(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=importer.HEADER)
        writer.writeheader()
        for row in rows:
            writer.writerow({name: row.get(name, "") for name in importer.HEADER})
    return path


def row(world: World, serial: str, **fields: Any) -> dict[str, Any]:
    return {
        "serial": serial,
        "manufacturer": world.maker,
        "item_type": world.rifle,
        "depot": world.depot,
        "year_of_manufacture": "1984",
        "country_of_manufacture": "Kovaria",
        "marking_status": "intact",
        "origin": "procured",
        "document_ref": "REG-1",
        "received_at": "1999-03-14",
        **fields,
    }


def run_import(session: Session, app: Flask, path: Path) -> importer.ImportReport:
    register = importer.check(session, path, utcnow())
    assert not register.errors, register.errors
    context = Context(actor=operator("import-test"), settings=app.extensions["inventory.settings"])
    return importer.post(session, context, register, path.name)


def test_a_clean_register_becomes_one_receipt_per_depot_and_document(
    api: Api, app: Flask, session: Session, tmp_path: Path
) -> None:
    world = make_world(api)
    serials = [unique("S") for _ in range(3)]
    path = write_register(
        tmp_path / "register.csv",
        [
            row(world, serials[0]),
            row(world, serials[1]),
            row(world, serials[2], depot=world.other_depot, document_ref="REG-2"),
        ],
    )
    report = run_import(session, app, path)
    assert (report.rows, report.receipts) == (3, 2)
    first = world.weapon(serials[0])
    assert first["holder"] == f"depot:{world.depot}"
    assert first["year_of_manufacture"] == 1984
    assert world.weapon(serials[2])["holder"] == f"depot:{world.other_depot}"
    history = api.get(f"/api/v1/weapons/{first['id']}/history").get_json()["items"]
    assert [(h["kind"], h["from"], h["document_ref"]) for h in history] == [
        ("receipt", "party:LEGACY-REGISTER", "REG-1")
    ]
    assert history[0]["occurred_at"].startswith("1999-03-14")


def test_a_register_with_any_problem_posts_nothing_and_names_each(
    api: Api, app: Flask, session: Session, tmp_path: Path
) -> None:
    world = make_world(api)
    registered = unique("S")
    assert world.receive([registered]).status_code == 201
    good, twice = unique("S"), unique("S")
    path = write_register(
        tmp_path / "register.csv",
        [
            row(world, good),
            row(world, registered),
            row(world, twice),
            row(world, twice),
            row(world, unique("S"), depot="D-NOWHERE", received_at="14/03/1999"),
            row(world, "", marking_status="intact", year_of_manufacture="nineteen"),
        ],
    )
    register = importer.check(session, path, utcnow())
    found = {(e.row, e.column) for e in register.errors}
    assert found == {
        (3, "serial"),
        (5, "serial"),
        (6, "depot"),
        (6, "received_at"),
        (7, "serial"),
        (7, "year_of_manufacture"),
    }
    messages = {(e.row, e.column): e.message for e in register.errors}
    assert "already registered" in messages[(3, "serial")]
    assert "also on row 4" in messages[(5, "serial")]
    with pytest.raises(ValueError):
        importer.post(session, Context(actor=operator("t")), register, path.name)
    assert api.get("/api/v1/weapons", query_string={"serial": good}).get_json()["items"] == []


def test_a_missing_column_is_reported_on_the_header_row(
    app: Flask, session: Session, tmp_path: Path
) -> None:
    path = tmp_path / "register.csv"
    path.write_text("serial,manufacturer\nA1,KOVAR\n", encoding="utf-8")
    (error,) = importer.check(session, path, utcnow()).errors
    assert (error.row, error.column) == (1, "header")
    assert "item_type" in error.message


def test_the_optional_columns_may_be_left_out_of_the_header(
    api: Api, app: Flask, session: Session, tmp_path: Path
) -> None:
    world = make_world(api)
    serial = unique("S")
    path = tmp_path / "register.csv"
    path.write_text(
        "serial,manufacturer,item_type,depot,document_ref,received_at\n"
        f"{serial},{world.maker},{world.rifle},{world.depot},REG-9,1999-03-14\n",
        encoding="utf-8",
    )
    assert run_import(session, app, path).rows == 1
    weapon = world.weapon(serial)
    assert weapon["marking_status"] == "intact" and weapon["year_of_manufacture"] is None


def test_naive_and_future_times_are_refused() -> None:
    with pytest.raises(ValueError, match="no UTC offset"):
        importer.received_at("1999-03-14T10:00:00")
    assert importer.received_at("1999-03-14T10:00:00+02:00").utcoffset() is not None


def test_the_command_lists_problems_by_row_and_posts_only_a_clean_file(
    api: Api, database_url: str, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from inventory.cli import main

    world = make_world(api)
    serial = unique("S")
    env = {
        "INVENTORY_DATABASE_URL": database_url,
        "INVENTORY_SIGNING_KEY": str(tmp_path / "key.pem"),
    }
    bad = write_register(tmp_path / "bad.csv", [row(world, serial, origin="found")])
    failed = CliRunner().invoke(main, ["import", str(bad)], env=env)
    assert failed.exit_code == 1
    assert "row 2, origin: 'found' is not one of" in failed.output
    assert "nothing was imported" in failed.output
    good = write_register(tmp_path / "good.csv", [row(world, serial)])
    done = CliRunner().invoke(main, ["import", str(good)], env=env)
    assert done.exit_code == 0, done.output
    assert "imported 1 weapons as 1 receipts" in done.output
    assert world.weapon(serial)["holder"] == f"depot:{world.depot}"
