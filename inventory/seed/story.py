"""The story steps of a seed scenario, each posted through the use case the API would call:
movements through the ledger, transfers, stocktakes and sightings through their services."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy.orm import Session

from ..clock import utcnow
from ..domain.movements import Kind
from ..services import (
    custody,
    holders,
    ledger,
    sightings,
    stocktake_close,
    stocktakes,
    sweep,
    transfer_receipts,
    transfers,
)
from ..services.ledger import MovementRequest
from ..services.lines import Line, LotRef, WeaponRef
from ..services.unit_of_work import UnitOfWork
from .scenario import Scenario, ScenarioError

Post = Callable[[Callable[[UnitOfWork], Any]], Any]
LOADED_NOTE = "loaded from seed scenario {name!r} (back-dated history)"
# Fields a ledger movement step may carry, as MovementRequest names them.
_MOVEMENT_FIELDS = ("document_ref", "case_ref", "reason", "certificate_ref")


def post_step(
    session: Session, scenario: Scenario, step: dict[str, Any], post: Post, where: str
) -> str:
    """Post one step; return its one-line story (or its kind) for the load report."""
    kind = step.get("kind")
    handler = _HANDLERS.get(str(kind))
    if handler is None:
        raise ScenarioError(f"story.yaml {where}: unknown kind {kind!r}")
    handler(session, scenario, step, post, where)
    return str(step.get("story") or kind)


def lines_of(scenario: Scenario, step: dict[str, Any]) -> list[Line]:
    """The weapon and lot lines a step names, as references to registered items."""
    lines: list[Line] = [
        WeaponRef(serial=m.serial, manufacturer=m.manufacturer, item_type=m.item_type)
        for m in scenario.select(step.get("weapons", []))
    ]
    lines += [
        LotRef(
            quantity=int(lot["quantity"]),
            lot_number=lot["lot_number"],
            item_type=scenario.lot_type(lot["lot_number"]),
        )
        for lot in step.get("lots", [])
    ]
    return lines


def _movement(
    _session: Session, scenario: Scenario, step: dict[str, Any], post: Post, where: str
) -> None:
    request = MovementRequest(
        kind=Kind(step["kind"]),
        occurred_at=scenario.at(step["occurred_at"], f"{where} occurred_at"),
        lines=lines_of(scenario, step),
        source=step.get("from"),
        destination=step.get("to"),
        due_back_at=(
            scenario.at(step["due_back_at"], f"{where} due_back_at")
            if "due_back_at" in step
            else None
        ),
        note=LOADED_NOTE.format(name=scenario.name),
        **{name: step[name] for name in _MOVEMENT_FIELDS if name in step},
    )
    post(lambda uow: ledger.post_movement(uow, request))


def _transfer(
    _session: Session, scenario: Scenario, step: dict[str, Any], post: Post, where: str
) -> None:
    """Dispatch now (transfers are never back-dated) and, if the step says so, receive at once:
    everything dispatched except what `received.missing` names."""
    order = transfers.TransferOrder(
        source=step["from"],
        destination=step["to"],
        expected_by=scenario.at(step["expected_by"], f"{where} expected_by"),
        lines=lines_of(scenario, step),
        document_ref=step.get("document_ref"),
        end_user_ref=step.get("end_user_ref"),
        note=LOADED_NOTE.format(name=scenario.name),
    )
    view = post(lambda uow: transfers.dispatch(uow, order))
    received = step.get("received")
    if received is None:
        return
    missing = {m.serial for m in scenario.select(received.get("missing", []))}
    short = {lot["lot_number"]: int(lot["quantity"]) for lot in received.get("short", [])}
    dispatched = lines_of(scenario, step)
    unknown = missing - {line.serial for line in dispatched if isinstance(line, WeaponRef)}
    if unknown:
        raise ScenarioError(f"{where}: missing {sorted(unknown)} were not dispatched")
    arrived: list[Line] = [
        line for line in dispatched if not (isinstance(line, WeaponRef) and line.serial in missing)
    ]
    arrived = [
        dataclasses.replace(line, quantity=line.quantity - short.get(line.lot_number or "", 0))
        if isinstance(line, LotRef)
        else line
        for line in arrived
    ]
    receipt = transfer_receipts.Receipt(
        received_at=utcnow(),
        lines=arrived,
        delivery_verification_ref=received.get("delivery_verification_ref"),
        note=LOADED_NOTE.format(name=scenario.name),
    )
    transfer_id = view.transfer.id
    if "first_check_due_days" in received:
        # The end-user agreement may set its own first check (e.g. at handover, 0 days).
        post(
            lambda uow: transfer_receipts.receive(
                _with_first_check(uow, int(received["first_check_due_days"])),
                transfer_id,
                receipt,
            )
        )
    else:
        post(lambda uow: transfer_receipts.receive(uow, transfer_id, receipt))


def _with_first_check(uow: UnitOfWork, days: int) -> UnitOfWork:
    uow.settings = dataclasses.replace(uow.settings, end_use_first_check=timedelta(days=days))
    return uow


def _stocktake(
    session: Session, scenario: Scenario, step: dict[str, Any], post: Post, where: str
) -> None:
    """Count everything the books place in the depot, less the `short` lot quantities, and
    close the count."""
    depot = step["depot"]
    short = {lot["lot_number"]: int(lot["quantity"]) for lot in step.get("short", [])}
    books = custody.holdings(session, holders.lookup(session, f"depot:{depot}"), None)
    unknown = set(short) - {lot.lot_number for lot in books.lots}
    if unknown:
        raise ScenarioError(f"{where}: depot {depot} holds no lot {sorted(unknown)}")
    counted: list[stocktakes.CountLine] = [WeaponRef(weapon_id=w.id) for w in books.weapons]
    counted += [
        LotRef(quantity=lot.quantity - short.get(lot.lot_number, 0), lot_id=lot.lot_id)
        for lot in books.lots
        if lot.quantity > short.get(lot.lot_number, 0)
    ]
    session.rollback()
    stocktake = post(lambda uow: stocktakes.open_stocktake(uow, depot))
    for start in range(0, len(counted), 5_000):
        batch = counted[start : start + 5_000]
        post(partial(stocktakes.add_counts, stocktake_id=stocktake.id, lines=batch))
    post(lambda uow: stocktake_close.close_stocktake(uow, stocktake.id))


def _sighting(
    _session: Session, scenario: Scenario, step: dict[str, Any], post: Post, where: str
) -> None:
    report = sightings.SightingReport(
        serial=step["serial"],
        manufacturer=step.get("manufacturer"),
        item_type=step.get("item_type"),
        observed_at=scenario.at(step["observed_at"], f"{where} observed_at"),
        place=step["place"],
        circumstances=step["circumstances"],
    )
    post(lambda uow: sightings.record_sighting(uow, report))


def _sweep(
    _session: Session, _scenario: Scenario, _step: dict[str, Any], post: Post, _where: str
) -> None:
    """Run the time-based checks with the real clock, as the worker would a minute later."""
    post(lambda uow: sweep.run_sweep(uow, uow.now))


_HANDLERS: dict[str, Callable[[Session, Scenario, dict[str, Any], Post, str], None]] = {
    str(kind): _movement
    for kind in (
        Kind.ISSUE,
        Kind.RETURN,
        Kind.LOSS,
        Kind.RECOVERY,
        Kind.EXPENDITURE,
        Kind.DESTRUCTION,
    )
}
_HANDLERS.update(
    {"transfer": _transfer, "stocktake": _stocktake, "sighting": _sighting, "sweep": _sweep}
)
