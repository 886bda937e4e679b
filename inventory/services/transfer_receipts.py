"""Receiving a transfer: one receipt closes it. What arrived and was on the manifest moves from
transit to the destination; what did not arrive stays in transit and opens `receipt_shortfall`
(one per weapon, one per lot for the rounds short); what arrived but was not expected opens
`receipt_surplus` and is not taken into stock. A delivery of weapons to a party schedules its
first end-use verification."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from ..db.models import EndUseVerification, Movement, Transfer
from ..domain.discrepancies import DiscrepancyKind
from ..domain.movements import Kind, is_future
from ..domain.policy import Action
from ..domain.transfers import lot_variance, match_weapons
from . import discrepancies, holders, ledger, outbox, transfers
from .discrepancies import Finding
from .errors import Conflict, Invalid
from .ledger import PostedLine
from .lines import Line, LineErrors, LotRef, LotRow, WeaponRef, WeaponRow, resolve_lots
from .lines import resolve_weapons as resolve_registered
from .transfers import TransferView, Variance
from .unit_of_work import UnitOfWork


@dataclass(frozen=True)
class Receipt:
    received_at: datetime
    lines: list[Line]
    delivery_verification_ref: str | None = None
    note: str | None = None


def receive(uow: UnitOfWork, transfer_id: uuid.UUID, receipt: Receipt) -> TransferView:
    """Close the transfer with what physically arrived (see the module docstring)."""
    session = uow.session
    transfer = transfers.locked(session, transfer_id)
    destination = transfer.to_holder
    _check_receiver(uow, transfer, receipt)
    if transfer.status != "in_transit":
        raise Conflict(
            f"transfer {transfer.id} is already {transfer.status}"
            + (f" (at {transfer.received_at.isoformat()})" if transfer.received_at else "")
            + "; a transfer takes one receipt"
        )
    _check_received_at(uow, transfer, receipt.received_at)
    expected_weapons, expected_lots = transfers.in_transit(session, transfer)
    manifest = transfers.manifest(session, transfer)
    arrived_weapons, arrived_lots, surplus = _match_arrivals(session, manifest, receipt.lines)
    received_weapons = [w for wid, w in arrived_weapons.items() if wid in expected_weapons]
    # On the manifest but no longer in transit (e.g. reported lost since): the books disagree.
    move_weapons = received_weapons + [
        w for wid, w in arrived_weapons.items() if wid not in expected_weapons
    ]
    shortfall: list[Variance] = []
    received_lots: dict[uuid.UUID, tuple[LotRow, int]] = {}
    for lot_id, (lot, expected) in expected_lots.items():
        variance = lot_variance(expected, arrived_lots.pop(lot_id, (lot, 0))[1])
        if variance.received:
            received_lots[lot_id] = (lot, variance.received)
        if variance.short:
            shortfall.append(_lot_item(lot, variance.short, f"{variance.short} rounds short"))
        if variance.over:
            surplus.append(_lot_item(lot, variance.over, f"{variance.over} rounds over"))
    for lot, quantity in arrived_lots.values():  # arrived, but not in this transit account
        surplus.append(_lot_item(lot, quantity, f"{quantity} rounds not on the manifest"))
    for wid, weapon in expected_weapons.items():
        if wid not in arrived_weapons:
            shortfall.append(_weapon_item(weapon, "did not arrive"))
    receipt_movement: Movement | None = None
    changes: dict[str, Any] = {"movement": None}
    plan = transfers.plan_of(move_weapons, received_lots)
    if plan.lines:
        posted, changes = ledger.post_system_movement(
            uow,
            Kind.RECEIVE,
            transfer.transit_holder,
            destination,
            plan,
            occurred_at=receipt.received_at,
            transfer_id=transfer.id,
            document_ref=transfer.document_ref,
            note=receipt.note,
        )
        receipt_movement = posted.movement
    shortfall, surplus = _open_variances(uow, transfer, shortfall, surplus)
    transfer.status = "received_with_discrepancy" if shortfall or surplus else "received"
    transfer.received_at = receipt.received_at
    transfer.receipt_movement_id = receipt_movement.id if receipt_movement else None
    transfer.delivery_verification_ref = receipt.delivery_verification_ref
    scheduled = _schedule_end_use(uow, transfer, received_weapons)
    view = transfers.view_of(session, transfer, uow.now)
    view.shortfall, view.surplus = shortfall, surplus
    outbox.publish(
        uow,
        "transfer.received",
        transfers.describe(view),
        depot=(holders.depot_of(destination) or transfer.from_holder.code),
    )
    uow.record(
        "transfer.receive",
        f"transfer:{transfer.id}",
        {
            "transfer": transfer.id,
            "status": transfer.status,
            "received_at": receipt.received_at,
            "delivery_verification_ref": receipt.delivery_verification_ref,
            "end_use_verification": scheduled,
            "shortfall": [_audit_item(item) for item in shortfall],
            "surplus": [_audit_item(item) for item in surplus],
            **changes,
        },
    )
    return view


def _check_receiver(uow: UnitOfWork, transfer: Transfer, receipt: Receipt) -> None:
    destination = transfer.to_holder
    transfers.require_for(uow, Action.RECEIVE, transfer, transfer.transit_holder, destination)
    if destination.kind == "depot":
        return
    if not receipt.delivery_verification_ref:
        raise Invalid(
            f"confirming delivery to {destination.ref} needs the delivery verification's reference",
            field="delivery_verification_ref",
        )


def _check_received_at(uow: UnitOfWork, transfer: Transfer, received_at: datetime) -> None:
    if is_future(received_at, uow.now):
        raise Invalid(
            f"received_at {received_at.isoformat()} is in the future (server time "
            f"{uow.now.isoformat()})",
            field="received_at",
        )
    if received_at < transfer.dispatched_at:
        raise Invalid(
            f"received_at {received_at.isoformat()} is before transfer {transfer.id} was "
            f"dispatched ({transfer.dispatched_at.isoformat()})",
            field="received_at",
        )


def _match_arrivals(
    session: Session, manifest: list[PostedLine], lines: list[Line]
) -> tuple[dict[uuid.UUID, WeaponRow], dict[uuid.UUID, tuple[LotRow, int]], list[Variance]]:
    """Sort the receipt's lines into manifest weapons, lot quantities and surplus items."""
    errors = LineErrors()
    weapon_refs = [(n, line) for n, line in enumerate(lines) if isinstance(line, WeaponRef)]
    lot_refs = [(n, line) for n, line in enumerate(lines) if isinstance(line, LotRef)]
    for n, line in enumerate(lines):
        if not isinstance(line, WeaponRef | LotRef):
            errors.add(
                n, "a receipt names what arrived: give weapon_id/serial or lot_id/lot_number"
            )
    on_manifest = {line.weapon.id: line.weapon for line in manifest if line.weapon}
    match = match_weapons(on_manifest.values(), weapon_refs)
    for line_no, message in match.errors.items():
        errors.add(line_no, message)
    errors.raise_if_any(Invalid)
    arrived = {row.id: on_manifest[row.id] for row in match.matched.values()}
    surplus: list[Variance] = []
    unmatched = set(match.unmatched)
    outside = [(n, ref) for n, ref in weapon_refs if n in unmatched]
    registered = resolve_registered(session, outside, LineErrors())
    for line_no, ref in outside:
        row = registered.get(line_no)
        if row is not None:
            surplus.append(_weapon_item(row, "not on the manifest"))
        else:
            marking = " ".join(filter(None, [ref.item_type, ref.manufacturer, ref.serial]))
            surplus.append(
                Variance(
                    f"weapon {marking or ref.weapon_id} not on the manifest, not registered",
                    weapon_id=None,
                    serial=ref.serial,
                    manufacturer=ref.manufacturer,
                    item_type=ref.item_type,
                )
            )
    manifest_lots = [line.lot for line in manifest if line.lot is not None]
    lots: dict[uuid.UUID, tuple[LotRow, int]] = {}
    known = resolve_lots(session, lot_refs, LineErrors())
    for line_no, lot_ref in lot_refs:
        lot = next((m for m in manifest_lots if _names_lot(lot_ref, m)), known.get(line_no))
        if lot is None:
            surplus.append(
                Variance(
                    f"lot {lot_ref.lot_number or lot_ref.lot_id}: {lot_ref.quantity} rounds "
                    "not on the manifest, not registered",
                    lot_number=lot_ref.lot_number,
                    item_type=lot_ref.item_type,
                    quantity=lot_ref.quantity,
                )
            )
            continue
        lots[lot.id] = (lot, lots.get(lot.id, (lot, 0))[1] + lot_ref.quantity)
    return arrived, lots, surplus


def _names_lot(ref: LotRef, lot: LotRow) -> bool:
    if ref.lot_id is not None:
        return ref.lot_id == lot.id
    return ref.lot_number == lot.lot_number and ref.item_type in (None, lot.item_type)


def _weapon_item(weapon: WeaponRow, why: str) -> Variance:
    return Variance(
        f"{weapon.label} {why}",
        weapon_id=weapon.id,
        serial=weapon.serial,
        manufacturer=weapon.manufacturer,
        item_type=weapon.item_type,
    )


def _lot_item(lot: LotRow, quantity: int, why: str) -> Variance:
    return Variance(
        f"{lot.label}: {why}",
        lot_id=lot.id,
        lot_number=lot.lot_number,
        item_type=lot.item_type,
        quantity=quantity,
    )


def _open_variances(
    uow: UnitOfWork,
    transfer: Transfer,
    shortfall: list[Variance],
    surplus: list[Variance],
) -> tuple[list[Variance], list[Variance]]:
    """One discrepancy per missing weapon, per short lot and per surplus item."""
    origin, destination = transfer.from_holder, transfer.to_holder
    # Surplus sits where it arrived; at a party it is the exporting depot's to explain.
    surplus_depot = destination if destination.kind == "depot" else origin
    keyed: list[tuple[Variance, Finding]] = []
    findings: list[Finding] = []
    for kind, items, depot, holder in (
        (DiscrepancyKind.RECEIPT_SHORTFALL, shortfall, origin, transfer.transit_holder),
        (DiscrepancyKind.RECEIPT_SURPLUS, surplus, surplus_depot, destination),
    ):
        for item in items:
            finding = Finding(
                kind,
                _subject_key(transfer, item),
                f"transfer {transfer.document_ref or transfer.id} "
                f"({origin.ref} → {destination.ref}): {item.summary}",
                depot=depot,
                holder=holder,
                weapon_id=item.weapon_id,
                lot_id=item.lot_id,
                quantity=item.quantity if item.lot_id or item.lot_number else None,
                transfer_id=transfer.id,
            )
            keyed.append((item, finding))
            findings.append(finding)
    opened = {(d.kind, d.subject_key): d.id for d in discrepancies.open_findings(uow, findings)}
    with_ids = [
        (f.kind, _with_id(item, opened.get((str(f.kind), f.subject_key)))) for item, f in keyed
    ]
    return (
        [item for kind, item in with_ids if kind is DiscrepancyKind.RECEIPT_SHORTFALL],
        [item for kind, item in with_ids if kind is DiscrepancyKind.RECEIPT_SURPLUS],
    )


def _with_id(item: Variance, discrepancy_id: uuid.UUID | None) -> Variance:
    return Variance(**{**item.__dict__, "discrepancy_id": discrepancy_id})


def _subject_key(transfer: Transfer, item: Variance) -> str:
    if item.weapon_id is not None:
        what = f"weapon:{item.weapon_id}"
    elif item.lot_id is not None:
        what = f"lot:{item.lot_id}"
    else:  # unregistered: keyed by the marking as given, hashed to fit
        marking = "|".join(
            str(v or "") for v in (item.serial, item.manufacturer, item.item_type, item.lot_number)
        )
        what = "unregistered:" + hashlib.sha256(marking.encode()).hexdigest()[:32]
    return f"transfer:{transfer.id}/{what}"


def _audit_item(item: Variance) -> list[Any]:
    return [
        item.discrepancy_id,
        item.weapon_id or item.lot_id,
        item.serial or item.lot_number,
        item.quantity,
    ]


def _schedule_end_use(
    uow: UnitOfWork, transfer: Transfer, delivered: list[WeaponRow]
) -> dict[str, Any] | None:
    """A delivery of weapons to a party schedules its first end-use serial check."""
    if transfer.to_holder.kind != "party" or not delivered:
        return None
    assert transfer.received_at is not None
    verification = EndUseVerification(
        id=uuid.uuid4(),
        transfer_id=transfer.id,
        number=1,
        due_at=transfer.received_at + uow.settings.end_use_first_check,
    )
    uow.session.add(verification)
    return {"id": verification.id, "number": 1, "due_at": verification.due_at}
