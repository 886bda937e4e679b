"""The sweep: the time-based checks, run by the worker every minute and by `inventory sweep`.

It takes the clock as a parameter so tests move time instead of sleeping, and it is idempotent:
each query leaves out subjects that already have an unresolved discrepancy of its kind, and
`open_findings` guards the rest (one unresolved discrepancy per kind and subject).

`verification_overdue` is one discrepancy per depot, carrying how many of its weapons were
overdue when it was opened: a depot of 10,000 unverified weapons is one problem for one clerk,
not 10,000 alerts. A weapon is overdue when it has been on the depot's books longer than the
policy period (`Settings.verification_period`) and was not physically verified within it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, select
from sqlalchemy.orm import Session, aliased

from ..db.models import (
    Discrepancy,
    EndUseVerification,
    Holder,
    ItemType,
    Movement,
    Transfer,
    Weapon,
    WeaponHolding,
    WeaponVerification,
)
from ..domain.discrepancies import DiscrepancyKind
from ..domain.prose import moment, weapon_label
from . import discrepancies
from .discrepancies import Finding
from .unit_of_work import UnitOfWork

Kind = DiscrepancyKind


@dataclass
class SweepResult:
    """How many discrepancies of each time-based kind this sweep opened, and their ids."""

    now: datetime
    opened: dict[str, int] = field(
        default_factory=lambda: {
            str(kind): 0
            for kind in (
                Kind.TRANSIT_OVERDUE,
                Kind.RETURN_OVERDUE,
                Kind.VERIFICATION_OVERDUE,
                Kind.END_USE_VERIFICATION_OVERDUE,
            )
        }
    )
    discrepancies: list[Any] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.opened.values())


def run_sweep(uow: UnitOfWork, now: datetime) -> SweepResult:
    """Open every time-based discrepancy that is due at `now` and not already open; record one
    `sweep.run` audit record with the counts, or none when the sweep found nothing new (the
    worker sweeps every minute; an empty sweep changes nothing and is not logged as a change)."""
    session = uow.session
    findings = (
        _transit_overdue(session, now)
        + _return_overdue(session, now)
        + _verification_overdue(uow, now)
        + _end_use_verification_overdue(session, now)
    )
    opened = discrepancies.open_findings(uow, findings)
    result = SweepResult(now)
    for discrepancy in opened:
        result.opened[discrepancy.kind] += 1
        result.discrepancies.append(discrepancy.id)
    if opened:
        uow.record("sweep.run", "sweep", {"now": now, "opened": result.opened})
    else:
        uow.changed_nothing()
    return result


def _not_open(kind: Kind, *conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    """No unresolved discrepancy of `kind` matches `conditions` (cheap pre-filter)."""
    return ~exists().where(
        Discrepancy.kind == str(kind), Discrepancy.status != "resolved", *conditions
    )


def _transit_overdue(session: Session, now: datetime) -> list[Finding]:
    rows = session.scalars(
        select(Transfer).where(
            Transfer.status == "in_transit",
            Transfer.expected_by < now,
            _not_open(Kind.TRANSIT_OVERDUE, Discrepancy.transfer_id == Transfer.id),
        )
    )
    return [
        Finding(
            Kind.TRANSIT_OVERDUE,
            f"transfer:{transfer.id}",
            f"transfer {transfer.document_ref or transfer.id} from {transfer.from_holder.ref} to "
            f"{transfer.to_holder.ref} was expected by {moment(transfer.expected_by)} and "
            "is still in transit",
            depot=transfer.from_holder if transfer.from_holder.kind == "depot" else None,
            holder=transfer.transit_holder,
            transfer_id=transfer.id,
        )
        for transfer in rows
    ]


def _return_overdue(session: Session, now: datetime) -> list[Finding]:
    """Weapons still at the unit their last movement (an issue) took them to, past its due date."""
    unit = aliased(Holder)
    rows = session.execute(
        select(
            Weapon.id,
            Weapon.serial,
            Weapon.manufacturer,
            ItemType.code,
            Movement.id,
            Movement.due_back_at,
            unit,
        )
        .join(ItemType, ItemType.id == Weapon.item_type_id)
        .join(WeaponHolding, WeaponHolding.weapon_id == Weapon.id)
        .join(Movement, Movement.seq == WeaponHolding.movement_seq)
        .join(unit, unit.id == WeaponHolding.holder_id)
        .where(
            unit.kind == "unit",
            Movement.kind == "issue",
            Movement.to_holder_id == unit.id,
            Movement.due_back_at < now,
            _not_open(
                Kind.RETURN_OVERDUE,
                Discrepancy.weapon_id == Weapon.id,
                Discrepancy.movement_id == Movement.id,
            ),
        )
        .order_by(Weapon.serial)
    )
    return [
        Finding(
            Kind.RETURN_OVERDUE,
            f"weapon:{weapon_id}@movement:{movement_id}",
            f"{weapon_label(item_type, maker, serial)} issued to {holder.ref} was due back by "
            f"{moment(due) if due else '?'} and has not been returned",
            depot=holder.home_depot,
            holder=holder,
            weapon_id=weapon_id,
            movement_id=movement_id,
        )
        for weapon_id, serial, maker, item_type, movement_id, due, holder in rows
    ]


def overdue_for_verification(cutoff: datetime) -> ColumnElement[bool]:
    """A weapon held since before `cutoff` whose last physical verification (if any) is older:
    to be used where `WeaponHolding` (and its `Movement`) are in the query."""
    return and_(
        Movement.recorded_at < cutoff,
        ~exists().where(
            WeaponVerification.weapon_id == WeaponHolding.weapon_id,
            WeaponVerification.verified_at >= cutoff,
        ),
    )


def _verification_overdue(uow: UnitOfWork, now: datetime) -> list[Finding]:
    cutoff = now - uow.settings.verification_period
    days = uow.settings.verification_period.days
    depot = aliased(Holder)
    counts: dict[int, int] = {
        depot_id: count
        for depot_id, count in uow.session.execute(
            select(depot.id, func.count())
            .select_from(WeaponHolding)
            .join(Movement, Movement.seq == WeaponHolding.movement_seq)
            .join(depot, depot.id == WeaponHolding.holder_id)
            .where(
                depot.kind == "depot",
                overdue_for_verification(cutoff),
                _not_open(Kind.VERIFICATION_OVERDUE, Discrepancy.holder_id == depot.id),
            )
            .group_by(depot.id)
        )
    }
    if not counts:
        return []
    rows = [
        (holder, counts[holder.id])
        for holder in uow.session.scalars(
            select(Holder).where(Holder.id.in_(counts)).order_by(Holder.code)
        )
    ]
    return [
        Finding(
            Kind.VERIFICATION_OVERDUE,
            f"depot:{holder.code}",
            f"{count} weapons in depot {holder.code} have not been physically verified in the "
            f"last {days} days (as of {moment(now)}); run a stocktake",
            depot=holder,
            holder=holder,
            quantity=count,
        )
        for holder, count in rows
    ]


def _end_use_verification_overdue(session: Session, now: datetime) -> list[Finding]:
    rows = session.execute(
        select(EndUseVerification, Transfer)
        .join(Transfer, Transfer.id == EndUseVerification.transfer_id)
        .where(
            EndUseVerification.done_at.is_(None),
            EndUseVerification.due_at < now,
            _not_open(
                Kind.END_USE_VERIFICATION_OVERDUE,
                Discrepancy.verification_id == EndUseVerification.id,
            ),
        )
        .order_by(EndUseVerification.due_at)
    )
    return [
        Finding(
            Kind.END_USE_VERIFICATION_OVERDUE,
            f"verification:{verification.id}",
            f"end-use verification {verification.number} of transfer "
            f"{transfer.document_ref or transfer.id} to {transfer.to_holder.ref} "
            f"(end user {transfer.end_user_ref or '?'}) was due by "
            f"{moment(verification.due_at)} and has not been recorded",
            depot=transfer.from_holder if transfer.from_holder.kind == "depot" else None,
            holder=transfer.to_holder,
            transfer_id=transfer.id,
            verification_id=verification.id,
        )
        for verification, transfer in rows
    ]
