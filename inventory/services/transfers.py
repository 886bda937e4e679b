"""Two-phase transfers: dispatch into the transfer's own transit account, then one receipt (what
arrived moves on; what did not stays in transit as a shortfall; what was not on the manifest is a
surplus and is not taken in) or a cancellation back to the origin.

The transit holder's `home_depot` is the origin depot, so stock in transit answers to the origin:
its clerk sees it, may report it lost, and the transfer's discrepancies about it are the origin's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from ..db.models import (
    Discrepancy,
    Holder,
    LotHolding,
    Movement,
    Transfer,
    WeaponHolding,
)
from ..domain import policy
from ..domain.actors import Actor
from ..domain.discrepancies import DiscrepancyKind
from ..domain.movements import Kind
from ..domain.policy import Action
from . import accountability, holders, ledger, outbox, posting_plan
from .errors import Conflict, Invalid, NotFound
from .ledger import Plan, PostedLine, movement_lines
from .lines import Line, LotRow, WeaponRow
from .unit_of_work import UnitOfWork

VARIANCE_KINDS = (str(DiscrepancyKind.RECEIPT_SHORTFALL), str(DiscrepancyKind.RECEIPT_SURPLUS))


@dataclass(frozen=True)
class TransferOrder:
    source: str
    destination: str
    expected_by: datetime
    lines: list[Line]
    document_ref: str | None = None
    end_user_ref: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Variance:
    """One shortfall or surplus item, as the receipt response and the transfer show it."""

    summary: str
    discrepancy_id: uuid.UUID | None = None
    weapon_id: uuid.UUID | None = None
    serial: str | None = None
    manufacturer: str | None = None
    item_type: str | None = None
    lot_id: uuid.UUID | None = None
    lot_number: str | None = None
    quantity: int | None = None


@dataclass
class TransferView:
    """A transfer with its manifest, what was received, its variances and its age at `now`."""

    transfer: Transfer
    now: datetime
    lines: list[PostedLine] = field(default_factory=list)
    received: list[PostedLine] = field(default_factory=list)
    shortfall: list[Variance] = field(default_factory=list)
    surplus: list[Variance] = field(default_factory=list)
    audit_seq: int | None = None

    @property
    def age_seconds(self) -> int:
        return int((self.now - self.transfer.dispatched_at).total_seconds())

    @property
    def overdue_by_seconds(self) -> int | None:
        late = self.now - self.transfer.expected_by
        return int(late.total_seconds()) if is_overdue(self.transfer, self.now) else None


def is_overdue(transfer: Transfer, now: datetime) -> bool:
    return transfer.status == "in_transit" and transfer.expected_by < now


def dispatch(uow: UnitOfWork, order: TransferOrder) -> TransferView:
    """Move the order's lines from the origin depot into a new transit account; the origin's
    clerk (or an admin) dispatches. A transfer to a party needs an end-user reference."""
    session = uow.session
    found = holders.resolve_many(session, {"from": order.source, "to": order.destination})
    source, destination = found["from"], found["to"]
    if source.kind != "depot":
        raise Invalid(f"a transfer leaves a depot, not {source.ref}", field="from")
    if destination.kind not in ("depot", "party") or destination.id == source.id:
        raise Invalid(
            f"a transfer from {source.ref} goes to another depot or a party, not {destination.ref}",
            field="to",
        )
    if destination.kind == "party" and not order.end_user_ref:
        raise Invalid(
            f"a transfer to {destination.ref} needs the end-user certificate's reference",
            field="end_user_ref",
        )
    accountability.require(
        uow,
        Action.DISPATCH,
        source=accountability.answer_of(source),
        destination=accountability.answer_of(destination),
    )
    if order.expected_by <= uow.now:
        raise Invalid(
            f"expected_by {order.expected_by.isoformat()} is not after the dispatch "
            f"({uow.now.isoformat()})",
            field="expected_by",
        )
    plan = posting_plan.plan_moves(session, Kind.DISPATCH, uow.now, order.lines)
    transfer_id = uuid.uuid4()
    transit = Holder(
        kind="transit",
        code=f"TR-{transfer_id}",
        name=f"in transit {source.code} → {destination.code}",
        home_depot_id=source.id,
        created_at=uow.now,
    )
    transit.home_depot = source
    session.add(transit)
    session.flush()
    posted, movement_changes = ledger.post_system_movement(
        uow,
        Kind.DISPATCH,
        source,
        transit,
        plan,
        occurred_at=uow.now,
        transfer_id=transfer_id,
        document_ref=order.document_ref,
        note=order.note,
    )
    transfer = Transfer(
        id=transfer_id,
        from_holder_id=source.id,
        to_holder_id=destination.id,
        transit_holder_id=transit.id,
        status="in_transit",
        expected_by=order.expected_by,
        document_ref=order.document_ref,
        end_user_ref=order.end_user_ref,
        dispatched_at=uow.now,
        dispatch_movement_id=posted.movement.id,
        created_by=uow.actor.name,
    )
    transfer.from_holder, transfer.to_holder, transfer.transit_holder = source, destination, transit
    session.add(transfer)
    session.flush()
    view = TransferView(transfer, uow.now, lines=posted.lines)
    outbox.publish(uow, "transfer.dispatched", describe(view), depot=source.code)
    uow.record(
        "transfer.dispatch",
        f"transfer:{transfer.id}",
        {
            "transfer": transfer.id,
            "transit": transit.ref,
            "expected_by": order.expected_by,
            "end_user_ref": order.end_user_ref,
            **movement_changes,
        },
    )
    return view


def cancel(uow: UnitOfWork, transfer_id: uuid.UUID, note: str | None = None) -> TransferView:
    """Return everything still in transit to the origin; only before any receipt."""
    transfer = locked(uow.session, transfer_id)
    require_for(uow, Action.CANCEL, transfer, transfer.transit_holder, transfer.from_holder)
    if transfer.status != "in_transit":
        raise Conflict(
            f"transfer {transfer.id} is {transfer.status}; it can no longer be cancelled"
        )
    expected_weapons, expected_lots = in_transit(uow.session, transfer)
    plan = plan_of(list(expected_weapons.values()), expected_lots)
    changes: dict[str, Any] = {"transfer": transfer.id, "note": note, "movement": None}
    if plan.lines:
        _, changes = ledger.post_system_movement(
            uow,
            Kind.CANCEL,
            transfer.transit_holder,
            transfer.from_holder,
            plan,
            occurred_at=uow.now,
            transfer_id=transfer.id,
            document_ref=transfer.document_ref,
            note=note,
        )
    transfer.status = "cancelled"
    uow.record("transfer.cancel", f"transfer:{transfer.id}", {"transfer": transfer.id, **changes})
    outbox.publish(uow, "transfer.cancelled", {"id": transfer.id}, depot=transfer.from_holder.code)
    return view_of(uow.session, transfer, uow.now)


def require_for(
    uow: UnitOfWork, action: Action, transfer: Transfer, source: Holder, destination: Holder
) -> None:
    """The policy's 403 for a step of `transfer`; a clerk of neither end gets its 404 instead,
    as when reading it."""
    accountability.require(
        uow,
        action,
        source=accountability.answer_of(source),
        destination=accountability.answer_of(destination),
        hide=None if _visible(uow.actor, transfer) else f"no transfer {transfer.id}",
    )


def _visible(actor: Actor, transfer: Transfer) -> bool:
    ends = (holders.depot_of(transfer.from_holder), holders.depot_of(transfer.to_holder))
    return any(policy.may_read(actor, depot) for depot in ends)


def locked(session: Session, transfer_id: uuid.UUID) -> Transfer:
    transfer = session.scalar(
        select(Transfer).where(Transfer.id == transfer_id).with_for_update(of=Transfer)
    )
    if transfer is None:
        raise NotFound(f"no transfer {transfer_id}")
    return transfer


def in_transit(
    session: Session, transfer: Transfer
) -> tuple[dict[uuid.UUID, WeaponRow], dict[uuid.UUID, tuple[LotRow, int]]]:
    """What the transfer's transit account holds now: its weapons, and rounds per lot."""
    weapons: dict[uuid.UUID, WeaponRow] = {}
    lots: dict[uuid.UUID, tuple[LotRow, int]] = {}
    held = set(
        session.scalars(
            select(WeaponHolding.weapon_id).where(
                WeaponHolding.holder_id == transfer.transit_holder_id
            )
        )
    )
    balances: dict[uuid.UUID, int] = {
        lot_id: quantity
        for lot_id, quantity in session.execute(
            select(LotHolding.lot_id, LotHolding.quantity).where(
                LotHolding.holder_id == transfer.transit_holder_id, LotHolding.quantity > 0
            )
        )
    }
    for line in manifest(session, transfer):
        if line.weapon is not None and line.weapon.id in held:
            weapons[line.weapon.id] = line.weapon
        elif line.lot is not None and line.lot.id in balances:
            lots[line.lot.id] = (line.lot, balances[line.lot.id])
    return weapons, lots


def manifest(session: Session, transfer: Transfer) -> list[PostedLine]:
    seq = session.scalar(select(Movement.seq).where(Movement.id == transfer.dispatch_movement_id))
    assert seq is not None
    return movement_lines(session, seq)


def plan_of(weapons: list[WeaponRow], lots: dict[uuid.UUID, tuple[LotRow, int]]) -> Plan:
    plan = Plan()
    for line_no, weapon in enumerate(weapons):
        plan.moving_weapons.append((line_no, weapon))
        plan.lines.append(PostedLine(line_no, 1, weapon=weapon))
    for line_no, (lot, quantity) in enumerate(lots.values(), start=len(weapons)):
        plan.lot_debits[lot.id] += quantity
        plan.lot_credits[lot.id] += quantity
        plan.lot_labels[lot.id] = (line_no, lot)
        plan.lines.append(PostedLine(line_no, quantity, lot=lot))
    return plan


# Reading


def transfers_query(
    session: Session,
    actor: Actor,
    *,
    status: str | None = None,
    overdue: bool = False,
    now: datetime,
) -> Select[Transfer]:
    """Transfers a user may see (clerks: from or to their depots), by status; `overdue` keeps
    those still in transit after `expected_by` at `now`."""
    stmt = select(Transfer)
    if status:
        stmt = stmt.where(Transfer.status == status)
    if overdue:
        stmt = stmt.where(Transfer.status == "in_transit", Transfer.expected_by < now)
    if (readable := policy.readable_depots(actor)) is not None:
        depot_ids = select(Holder.id).where(Holder.kind == "depot", Holder.code.in_(readable))
        stmt = stmt.where(
            or_(Transfer.from_holder_id.in_(depot_ids), Transfer.to_holder_id.in_(depot_ids))
        )
    return stmt


def get_transfer(
    session: Session, actor: Actor, transfer_id: uuid.UUID, now: datetime
) -> TransferView:
    transfer = session.scalar(
        transfers_query(session, actor, now=now).where(Transfer.id == transfer_id)
    )
    if transfer is None:  # out of a clerk's scope looks the same as absent
        raise NotFound(f"no transfer {transfer_id}")
    return view_of(session, transfer, now)


def view_of(session: Session, transfer: Transfer, now: datetime) -> TransferView:
    """The transfer with its manifest, received lines and the variances its receipt opened."""
    received: list[PostedLine] = []
    if transfer.receipt_movement_id is not None:
        seq = session.scalar(
            select(Movement.seq).where(Movement.id == transfer.receipt_movement_id)
        )
        assert seq is not None
        received = movement_lines(session, seq)
    view = TransferView(transfer, now, manifest(session, transfer), received)
    rows = session.scalars(
        select(Discrepancy)
        .where(Discrepancy.transfer_id == transfer.id, Discrepancy.kind.in_(VARIANCE_KINDS))
        .order_by(Discrepancy.seq)
    )
    labels = {line.weapon.id: line.weapon for line in view.lines if line.weapon}
    lots = {line.lot.id: line.lot for line in view.lines if line.lot}
    for d in rows:
        weapon = labels.get(d.weapon_id) if d.weapon_id else None
        lot = lots.get(d.lot_id) if d.lot_id else None
        item = Variance(
            d.summary,
            d.id,
            weapon_id=d.weapon_id,
            serial=weapon.serial if weapon else None,
            manufacturer=weapon.manufacturer if weapon else None,
            item_type=weapon.item_type if weapon else (lot.item_type if lot else None),
            lot_id=d.lot_id,
            lot_number=lot.lot_number if lot else None,
            quantity=d.quantity,
        )
        (view.shortfall if d.kind == VARIANCE_KINDS[0] else view.surplus).append(item)
    return view


def describe(view: TransferView) -> dict[str, Any]:
    """The transfer as monitors receive it in `transfer.*` events."""
    transfer = view.transfer
    return {
        "id": transfer.id,
        "status": transfer.status,
        "from": transfer.from_holder.ref,
        "to": transfer.to_holder.ref,
        "document_ref": transfer.document_ref,
        "end_user_ref": transfer.end_user_ref,
        "expected_by": transfer.expected_by,
        "dispatched_at": transfer.dispatched_at,
        "received_at": transfer.received_at,
        "lines": len(view.lines),
        "shortfall": len(view.shortfall),
        "surplus": len(view.surplus),
    }
