"""Sightings and traces: what monitors do with a weapon found outside the state's custody.

A sighting (recovered from an armed group, seized, photographed) is matched to the register by
its marking. A registered weapon the books place in custody — a depot, a unit, a transfer in
transit — opens `sighting_outside_custody` against the depot that answers for it; one exported to
an outside party opens it against the transfer that delivered it (its end-use record); one the
books say was destroyed opens it against the depot that recorded the destruction (a false
certificate is a known diversion route). One recorded lost is already a reported loss: nothing new
is opened, and the answer names the open loss. A serial matching nothing opens
`unknown_serial_sighted`. There is no sightings table: the sighting lives in its audit record.

A trace lists the weapons a marking may be, each with its chain of custody and the last holder
that answered for it: the last depot or unit, and for a unit the depot that issued it there.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from ..db.models import Discrepancy, Holder, ItemType, Movement, Transfer, Weapon, WeaponHolding
from ..domain import policy
from ..domain.actors import Actor
from ..domain.discrepancies import DiscrepancyKind
from ..domain.movements import is_future, status_of
from ..domain.prose import moment, weapon_label
from . import custody, discrepancies, holders
from .accountability import require
from .custody import CustodyStep
from .discrepancies import Finding
from .errors import Invalid
from .unit_of_work import UnitOfWork

CUSTODY_KINDS = ("depot", "unit", "transit")
MAX_CANDIDATES = 100


@dataclass(frozen=True)
class SightingReport:
    """What a monitor saw: the marking, when and where, and how it came to light."""

    serial: str
    observed_at: datetime
    place: str
    circumstances: str
    manufacturer: str | None = None
    item_type: str | None = None


@dataclass
class Sighting:
    """A recorded sighting: the weapon it matched (if any), where the books had it, and the
    discrepancy it opened or found already open."""

    id: uuid.UUID
    report: SightingReport
    recorded_at: datetime
    weapon: Weapon | None
    books_holder: str | None
    discrepancy: Discrepancy | None
    opened: bool
    audit_seq: int | None = None

    @property
    def books_status(self) -> str | None:
        return status_of(self.books_holder.split(":", 1)[0]) if self.books_holder else None


def candidates_query(
    serial: str, manufacturer: str | None = None, item_type: str | None = None
) -> Select[Weapon]:
    """Registered weapons marked `serial` (and by `manufacturer`, of `item_type`, if given)."""
    stmt = select(Weapon).where(Weapon.serial == serial)
    if manufacturer:
        stmt = stmt.where(Weapon.manufacturer == manufacturer)
    if item_type:
        stmt = stmt.where(
            Weapon.item_type_id.in_(select(ItemType.id).where(ItemType.code == item_type))
        )
    return stmt


def record_sighting(uow: UnitOfWork, report: SightingReport) -> Sighting:
    """Record a sighting and open the discrepancy it reveals (see the module docstring)."""
    require(uow, policy.Action.SIGHTING)
    session = uow.session
    if is_future(report.observed_at, uow.now):
        raise Invalid(
            f"observed_at {report.observed_at.isoformat()} is in the future", field="observed_at"
        )
    matches = list(
        session.scalars(
            candidates_query(report.serial, report.manufacturer, report.item_type)
            .order_by(Weapon.manufacturer, Weapon.id)
            .limit(MAX_CANDIDATES)
        )
    )
    if len(matches) > 1:
        makers = ", ".join(f"{w.manufacturer} {w.item_type.code}" for w in matches[:10])
        raise Invalid(
            f"serial {report.serial} matches {len(matches)} registered weapons ({makers}); "
            "give the manufacturer (and item_type) as marked, or trace the serial first",
            field="manufacturer",
        )
    sighting_id = uuid.uuid4()
    weapon = matches[0] if matches else None
    where = f"at {report.place} on {moment(report.observed_at)}: {report.circumstances}"
    if weapon is None:
        finding: Finding | None = _unknown_serial(report, where)
        books_holder = None
    else:
        holder = weapon.holding.holder
        books_holder = holder.ref
        finding = _outside_custody(session, weapon, holder, where)
    discrepancy, opened = _open_or_existing(uow, finding, weapon)
    uow.record(
        "sighting.record",
        f"sighting:{sighting_id}",
        {
            "serial": report.serial,
            "manufacturer": report.manufacturer,
            "item_type": report.item_type,
            "observed_at": report.observed_at,
            "place": report.place,
            "circumstances": report.circumstances,
            "weapon_id": weapon.id if weapon else None,
            "books_holder": books_holder,
            "discrepancy": discrepancy.id if discrepancy else None,
        },
    )
    return Sighting(
        sighting_id, report, uow.now, weapon, books_holder, discrepancy, opened, uow.audit_seq
    )


def _unknown_serial(report: SightingReport, where: str) -> Finding:
    marking = weapon_label(report.item_type, report.manufacturer, report.serial)
    key = f"marking:{report.manufacturer or ''}|{report.item_type or ''}|{report.serial}"
    return Finding(
        DiscrepancyKind.UNKNOWN_SERIAL_SIGHTED,
        key,
        f"{marking} sighted {where}; no registered weapon has this marking",
    )


def _outside_custody(
    session: Session, weapon: Weapon, holder: Holder, where: str
) -> Finding | None:
    label = weapon_label(weapon.item_type.code, weapon.manufacturer, weapon.serial)
    depot: Holder | None = None
    transfer_id: uuid.UUID | None = None
    movement: Movement | None = None
    if holder.kind in CUSTODY_KINDS:
        depot = holders.depot_holder_of(holder)
        if holder.kind == "transit":
            transfer = session.scalar(
                select(Transfer).where(Transfer.transit_holder_id == holder.id)
            )
            if transfer is not None:
                depot, transfer_id = depot or transfer.from_holder, transfer.id
        books = f"the books place it at {holder.ref}"
    elif holder.kind in ("party", "destroyed"):
        movement = _last_movement(session, weapon)
        depot = holders.depot_holder_of(movement.from_holder)
        if movement.transfer_id is not None:
            transfer = session.get(Transfer, movement.transfer_id)
            if transfer is not None:
                transfer_id = transfer.id
                depot = holders.depot_holder_of(transfer.from_holder) or depot
        books = (
            f"the books have it delivered to {holder.ref}"
            + (f" by transfer {transfer_id}" if transfer_id else "")
            if holder.kind == "party"
            else f"the books have it destroyed by movement {movement.id}"
        )
    else:
        return None  # lost: already a reported loss, which the answer names
    return Finding(
        DiscrepancyKind.SIGHTING_OUTSIDE_CUSTODY,
        f"weapon:{weapon.id}",
        f"{label} sighted {where}; {books}",
        depot=depot,
        holder=holder,
        weapon_id=weapon.id,
        transfer_id=transfer_id,
        movement_id=movement.id if movement is not None else None,
    )


def _last_movement(session: Session, weapon: Weapon) -> Movement:
    return session.scalars(
        select(Movement)
        .join(WeaponHolding, WeaponHolding.movement_seq == Movement.seq)
        .where(WeaponHolding.weapon_id == weapon.id)
    ).one()


def _open_or_existing(
    uow: UnitOfWork, finding: Finding | None, weapon: Weapon | None
) -> tuple[Discrepancy | None, bool]:
    """The discrepancy the sighting opened (True), or the one already open about it (False)."""
    if finding is not None:
        opened = discrepancies.open_findings(uow, [finding])
        if opened:
            return opened[0], True
        kind, key = str(finding.kind), finding.subject_key
    elif weapon is not None:
        kind, key = str(DiscrepancyKind.REPORTED_LOSS), f"weapon:{weapon.id}"
    else:
        return None, False
    existing = uow.session.scalar(
        select(Discrepancy)
        .where(Discrepancy.kind == kind, Discrepancy.subject_key == key)
        .where(Discrepancy.status != "resolved")
    )
    return existing, False


@dataclass(frozen=True)
class AccountableHolder:
    """The last depot or unit that held a weapon; `depot` answers for it (for a unit, the depot
    that issued it there). `since` is when the movement that put it there happened
    (`occurred_at`), `recorded_at` when it was posted."""

    holder: str
    depot: str | None
    since: datetime
    recorded_at: datetime
    movement_id: uuid.UUID


@dataclass(frozen=True)
class TraceCandidate:
    weapon: Weapon
    chain: list[CustodyStep]
    last_accountable: AccountableHolder | None


def trace(
    session: Session, actor: Actor, serial: str, manufacturer: str | None = None
) -> list[TraceCandidate]:
    """Every registered weapon `serial` may be (up to 100), with its chain of custody."""
    weapons = session.scalars(
        candidates_query(serial, manufacturer)
        .order_by(Weapon.manufacturer, Weapon.id)
        .limit(MAX_CANDIDATES)
    )
    found = []
    for weapon in weapons:
        chain = custody.chain_of_custody(session, custody.weapon_history(session, actor, weapon.id))
        found.append(TraceCandidate(weapon, chain, last_accountable(session, chain)))
    return found


def last_accountable(session: Session, chain: list[CustodyStep]) -> AccountableHolder | None:
    """The last depot or unit in `chain`, with the depot that answers for it."""
    for step in reversed(chain):
        kind, code = step.destination.split(":", 1)
        if kind == "depot":
            return AccountableHolder(
                step.destination, code, step.occurred_at, step.recorded_at, step.movement_id
            )
        if kind == "unit":
            source_kind, source_code = step.source.split(":", 1)
            depot = source_code if source_kind == "depot" else _home_depot(session, code)
            return AccountableHolder(
                step.destination, depot, step.occurred_at, step.recorded_at, step.movement_id
            )
    return None


def _home_depot(session: Session, unit_code: str) -> str | None:
    unit = session.scalar(select(Holder).where(Holder.kind == "unit", Holder.code == unit_code))
    home = unit.home_depot if unit is not None else None
    return home.code if home is not None else None
