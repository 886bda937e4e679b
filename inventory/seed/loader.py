"""Loading a seed scenario: every record is posted through the same use case the API calls, one
transaction each, so the audit log, the discrepancies and the alerts it leaves are real.

History is back-dated (occurred_at in the past) but recorded now. The loader posts it as migrated
records: it widens the late-entry window to cover the scenario, so decades of history do not
raise one `late_entry` finding per movement; every movement carries a note saying it was loaded
from the scenario. Overdue states come from due dates in the past relative to the load."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.models import ItemType, Movement
from ..domain.actors import operator
from ..domain.movements import Kind
from ..services import ledger, reference
from ..services.ledger import MovementRequest
from ..services.lines import LotRegistration, WeaponRegistration
from ..services.unit_of_work import Context, UnitOfWork, run_write
from ..settings import Settings
from . import story
from .scenario import Scenario

Progress = Callable[[int], None]


@dataclass
class LoadReport:
    """What a load did: `loaded` is False when the scenario was already on the books."""

    scenario: str
    loaded: bool
    weapons: int = 0
    lots: int = 0
    movements: int = 0
    steps: list[str] = field(default_factory=list)


def is_loaded(session: Session, scenario: Scenario) -> bool:
    """Whether the scenario's first receipt is already on the books (the load's marker)."""
    first = scenario.receipts[0].document_ref
    found = session.scalar(
        select(Movement.id).where(Movement.kind == "receipt", Movement.document_ref == first)
    )
    session.rollback()
    return found is not None


def steps_in(scenario: Scenario) -> int:
    """How many times `load` advances its progress: reference data, each receipt, each step."""
    return 1 + len(scenario.receipts) + len(scenario.steps)


def load(
    session: Session,
    settings: Settings,
    scenario: Scenario,
    *,
    progress: Progress | None = None,
) -> LoadReport:
    """Load `scenario` (see `scenario.read`) unless it is already loaded; report what was
    posted. `progress` is called with 1 after each of `steps_in(scenario)` steps."""
    name = scenario.name
    if is_loaded(session, scenario):
        return LoadReport(name, loaded=False)
    earliest = min(r.received_at for r in scenario.receipts)
    seed_settings = dataclasses.replace(
        settings, late_entry_window=scenario.now - earliest + timedelta(days=1)
    )
    context = Context(actor=operator(f"seed-{name}"), settings=seed_settings)
    report = LoadReport(name, loaded=True)

    def post(use_case: Callable[[UnitOfWork], Any]) -> Any:
        return run_write(session, context, use_case, lambda result, _uow: result).body

    _reference(session, context, scenario)
    _advance(progress)
    for note in scenario.receipts:
        posted = post(partial(ledger.post_movement, request=_receipt(scenario, note)))
        report.movements += 1
        report.weapons += sum(1 for line in posted.lines if line.weapon is not None)
        report.lots += len(scenario.lots_of(note.document_ref))
        _advance(progress)
    for number, step in enumerate(scenario.steps, start=1):
        report.steps.append(story.post_step(session, scenario, step, post, f"step {number}"))
        report.movements += 1
        _advance(progress)
    session.close()
    return report


def _advance(progress: Progress | None) -> None:
    if progress is not None:
        progress(1)


def _reference(session: Session, context: Context, scenario: Scenario) -> None:
    """Create the reference records not already there (a demo depot may predate the seed)."""
    data = scenario.reference
    holders: list[tuple[str, str, Callable[..., Any]]] = []
    for d in data["depots"]:
        holders.append(
            (
                "depot",
                d["code"],
                partial(
                    reference.create_depot, code=d["code"], name=d["name"], country=d["country"]
                ),
            )
        )
    for u in data["units"]:
        holders.append(
            (
                "unit",
                u["code"],
                partial(reference.create_unit, code=u["code"], name=u["name"], depot=u["depot"]),
            )
        )
    for p in data["parties"]:
        party = partial(
            reference.create_party,
            code=p["code"],
            name=p["name"],
            country=p["country"],
            kind=p["kind"],
        )
        holders.append(("party", p["code"], party))
    for kind, code, create in holders:
        if reference.find_holder(session, kind, code) is None:
            run_write(session, context, create, _nothing)
    for item_type in data["item_types"]:
        if session.scalar(select(ItemType.id).where(ItemType.code == item_type["code"])) is None:
            run_write(session, context, partial(reference.create_item_type, **item_type), _nothing)
    session.rollback()


def _nothing(_result: object, _uow: UnitOfWork) -> None:
    return None


def _receipt(scenario: Scenario, note: Any) -> MovementRequest:
    weapons = [
        WeaponRegistration(
            manufacturer=batch.manufacturer,
            item_type=batch.item_type,
            serial=batch.serial(index),
            origin=batch.origin,
            year_of_manufacture=batch.year,
            country_of_manufacture=batch.country,
        )
        for batch, index in scenario.weapons_of(note.document_ref)
    ]
    lots = [
        LotRegistration(
            lot_number=lot.lot_number,
            item_type=lot.item_type,
            quantity=lot.quantity,
            manufacturer=lot.manufacturer,
            year_of_manufacture=lot.year_of_manufacture,
        )
        for lot in scenario.lots_of(note.document_ref)
    ]
    return MovementRequest(
        kind=Kind.RECEIPT,
        occurred_at=note.received_at,
        lines=[*weapons, *lots],
        source=note.source,
        destination=note.destination,
        document_ref=note.document_ref,
        note=story.LOADED_NOTE.format(name=scenario.name),
    )
