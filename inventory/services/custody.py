"""Reading the custody ledger: weapons and lots with their holders, chains of custody, and the
holdings of any holder now (from the projection) or as of any past time (from the ledger)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from ..db.models import (
    AuditRecord,
    Holder,
    ItemType,
    Lot,
    LotHolding,
    Movement,
    MovementLine,
    Weapon,
    WeaponHolding,
)
from ..domain import policy
from ..domain.actors import Actor
from ..domain.movements import STATUS_BY_HOLDER_KIND
from . import holders
from .errors import Forbidden, NotFound
from .ledger import PostedMovement, movement_lines


def visible_holder_ids(session: Session, actor: Actor) -> Select[int] | None:
    """Holders a clerk may see (their depots and those depots' units); None means all."""
    if (readable := policy.readable_depots(actor)) is None:
        return None
    depot_ids = select(Holder.id).where(Holder.kind == "depot", Holder.code.in_(readable))
    return select(Holder.id).where(
        or_(Holder.id.in_(depot_ids), Holder.home_depot_id.in_(depot_ids))
    )


def weapons_query(
    session: Session,
    actor: Actor,
    *,
    serial: str | None = None,
    manufacturer: str | None = None,
    holder: str | None = None,
    status: str | None = None,
    item_type: str | None = None,
) -> Select[Weapon]:
    stmt = select(Weapon).join(WeaponHolding, WeaponHolding.weapon_id == Weapon.id)
    if serial:
        stmt = stmt.where(Weapon.serial == serial)
    if manufacturer:
        stmt = stmt.where(Weapon.manufacturer == manufacturer)
    if item_type:
        stmt = stmt.where(
            Weapon.item_type_id.in_(select(ItemType.id).where(ItemType.code == item_type))
        )
    if holder:
        stmt = stmt.where(WeaponHolding.holder_id == holders.lookup(session, holder).id)
    if status:
        kinds = [kind for kind, name in STATUS_BY_HOLDER_KIND.items() if name == status]
        stmt = stmt.where(
            WeaponHolding.holder_id.in_(select(Holder.id).where(Holder.kind.in_(kinds)))
        )
    if (visible := visible_holder_ids(session, actor)) is not None:
        stmt = stmt.where(WeaponHolding.holder_id.in_(visible))
    return stmt


def get_weapon(session: Session, actor: Actor, weapon_id: uuid.UUID) -> Weapon:
    weapon = session.scalar(weapons_query(session, actor).where(Weapon.id == weapon_id))
    if weapon is None:  # out of a clerk's scope looks the same as absent: nothing leaks
        raise NotFound(f"no weapon {weapon_id}")
    return weapon


@dataclass(frozen=True)
class CustodyStep:
    movement_id: uuid.UUID
    kind: str
    source: str
    destination: str
    occurred_at: datetime
    recorded_at: datetime
    actor: str
    document_ref: str | None
    quantity: int


# A custody row's sort key: the movement's seq, then the line within it.
HISTORY_KEY = (Movement.seq, MovementLine.line_no)
History = Select[*tuple[Any, ...]]


def _history(condition: ColumnElement[bool]) -> History:
    """Custody rows (`steps` reads them), unordered: the caller orders or pages by HISTORY_KEY."""
    source, destination = aliased(Holder), aliased(Holder)
    return (
        select(
            Movement.seq,
            MovementLine.line_no,
            Movement.id,
            Movement.kind,
            source.kind,
            source.code,
            destination.kind,
            destination.code,
            Movement.occurred_at,
            Movement.recorded_at,
            Movement.actor,
            Movement.document_ref,
            MovementLine.quantity,
        )
        .join(Movement, Movement.seq == MovementLine.movement_seq)
        .join(source, source.id == Movement.from_holder_id)
        .join(destination, destination.id == Movement.to_holder_id)
        .where(condition)
    )


def steps(rows: Iterable[Any]) -> list[CustodyStep]:
    """Custody rows of `_history` as the steps of a chain of custody."""
    return [
        CustodyStep(mid, kind, f"{sk}:{sc}", f"{dk}:{dc}", occurred, recorded, actor, doc, qty)
        for _seq, _line, mid, kind, sk, sc, dk, dc, occurred, recorded, actor, doc, qty in rows
    ]


def chain_of_custody(session: Session, history: History) -> list[CustodyStep]:
    """All of a history's steps, oldest first."""
    return steps(session.execute(history.order_by(*HISTORY_KEY)))


def weapon_history(session: Session, actor: Actor, weapon_id: uuid.UUID) -> History:
    """The weapon's chain of custody, as custody rows."""
    get_weapon(session, actor, weapon_id)
    return _history(MovementLine.weapon_id == weapon_id)


def lots_query(session: Session, lot_number: str | None = None) -> Select[Lot]:
    stmt = select(Lot)
    if lot_number:
        stmt = stmt.where(Lot.lot_number == lot_number)
    return stmt


@dataclass(frozen=True)
class LotBalance:
    holder: str
    quantity: int


def get_lot(session: Session, actor: Actor, lot_id: uuid.UUID) -> tuple[Lot, list[LotBalance]]:
    lot = session.get(Lot, lot_id)
    if lot is None:
        raise NotFound(f"no lot {lot_id}")
    stmt = (
        select(Holder.kind, Holder.code, LotHolding.quantity)
        .join(Holder, Holder.id == LotHolding.holder_id)
        .where(LotHolding.lot_id == lot_id, LotHolding.quantity > 0)
        .order_by(Holder.kind, Holder.code)
    )
    if (visible := visible_holder_ids(session, actor)) is not None:
        stmt = stmt.where(LotHolding.holder_id.in_(visible))
    balances = [LotBalance(f"{k}:{c}", q) for k, c, q in session.execute(stmt)]
    return lot, balances


def lot_history(session: Session, actor: Actor, lot_id: uuid.UUID) -> History:
    """Every movement of the lot, as custody rows; a clerk sees those touching their depots (and
    their depots' units), the same scope as everywhere else."""
    get_lot(session, actor, lot_id)
    condition: ColumnElement[bool] = MovementLine.lot_id == lot_id
    if (visible := visible_holder_ids(session, actor)) is not None:
        touches = or_(Movement.from_holder_id.in_(visible), Movement.to_holder_id.in_(visible))
        condition = and_(condition, touches)
    return _history(condition)


@dataclass(frozen=True)
class LotQuantity:
    lot_id: uuid.UUID
    lot_number: str
    item_type: str
    quantity: int


@dataclass(frozen=True)
class Holdings:
    holder: str
    as_of: datetime | None
    weapons: list[Weapon]
    lots: list[LotQuantity]


def holdings(session: Session, holder: Holder, as_of: datetime | None) -> Holdings:
    """What the books said `holder` held at `as_of` (by recorded time), or holds now."""
    if as_of is None:
        weapon_ids: Any = select(WeaponHolding.weapon_id).where(
            WeaponHolding.holder_id == holder.id
        )
        lot_rows = session.execute(
            select(Lot.id, Lot.lot_number, ItemType.code, LotHolding.quantity)
            .join(LotHolding, LotHolding.lot_id == Lot.id)
            .join(ItemType, ItemType.id == Lot.item_type_id)
            .where(LotHolding.holder_id == holder.id, LotHolding.quantity > 0)
            .order_by(ItemType.code, Lot.lot_number)
        )
    else:
        weapon_ids = weapons_held_at(holder.id, as_of)
        lot_rows = session.execute(lots_held_at(holder.id, as_of))
    weapons = list(
        session.scalars(
            select(Weapon).where(Weapon.id.in_(weapon_ids)).order_by(Weapon.serial, Weapon.id)
        )
    )
    return Holdings(holder.ref, as_of, weapons, [LotQuantity(*row) for row in lot_rows])


def weapons_held_at(holder_id: int, as_of: datetime) -> Select[uuid.UUID | None]:
    """Weapons whose last movement recorded by `as_of` took them to the holder."""
    later_line, later = aliased(MovementLine), aliased(Movement)
    return (
        select(MovementLine.weapon_id)
        .join(Movement, Movement.seq == MovementLine.movement_seq)
        .where(
            Movement.to_holder_id == holder_id,
            Movement.recorded_at <= as_of,
            MovementLine.weapon_id.is_not(None),
            ~exists(
                select(later_line.id)
                .join(later, later.seq == later_line.movement_seq)
                .where(
                    later_line.weapon_id == MovementLine.weapon_id,
                    later_line.movement_seq > MovementLine.movement_seq,
                    later.recorded_at <= as_of,
                )
            ),
        )
    )


def lots_held_at(holder_id: int, as_of: datetime) -> Select[uuid.UUID, str, str, Any]:
    """Per lot: rounds moved to the holder minus rounds moved out of it, by `as_of`."""
    signed = case(
        (Movement.to_holder_id == holder_id, MovementLine.quantity),
        else_=-MovementLine.quantity,
    )
    balance = func.sum(signed)
    return (
        select(Lot.id, Lot.lot_number, ItemType.code, balance)
        .join(MovementLine, MovementLine.lot_id == Lot.id)
        .join(Movement, Movement.seq == MovementLine.movement_seq)
        .join(ItemType, ItemType.id == Lot.item_type_id)
        .where(
            Movement.recorded_at <= as_of,
            or_(
                Movement.to_holder_id == holder_id,
                and_(Movement.from_holder_id == holder_id, MovementLine.registers.is_(False)),
            ),
        )
        .group_by(Lot.id, Lot.lot_number, ItemType.code)
        .having(balance > 0)
        .order_by(ItemType.code, Lot.lot_number)
    )


def movements_query(
    session: Session,
    actor: Actor,
    *,
    holder: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Select[Movement]:
    stmt = select(Movement)
    if holder:
        holder_id = holders.lookup(session, holder).id
        stmt = stmt.where(
            or_(Movement.from_holder_id == holder_id, Movement.to_holder_id == holder_id)
        )
    if kind:
        stmt = stmt.where(Movement.kind == kind)
    if since:
        stmt = stmt.where(Movement.recorded_at >= since)
    if until:
        stmt = stmt.where(Movement.recorded_at < until)
    if (visible := visible_holder_ids(session, actor)) is not None:
        stmt = stmt.where(
            or_(Movement.from_holder_id.in_(visible), Movement.to_holder_id.in_(visible))
        )
    return stmt


def get_movement(session: Session, actor: Actor, movement_id: uuid.UUID) -> PostedMovement:
    movement = session.scalar(movements_query(session, actor).where(Movement.id == movement_id))
    if movement is None:
        raise NotFound(f"no movement {movement_id}")
    audit_seq = session.scalar(
        select(AuditRecord.seq).where(AuditRecord.subject == f"movement:{movement.id}")
    )
    return PostedMovement(movement, movement_lines(session, movement.seq), audit_seq)


def holdings_of(
    session: Session, actor: Actor, ref: str, as_of: datetime | None = None
) -> Holdings:
    """`holdings` of the holder `ref` names, if `actor` may read the depot that answers for it."""
    holder = holders.lookup(session, ref)
    if not policy.may_read(actor, holders.depot_of(holder)):
        raise Forbidden(f"{holder.ref} is outside your depots")
    return holdings(session, holder, as_of)
