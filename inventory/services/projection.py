"""The current-holdings projection, recomputed from the ledger: compared (`check`) or rebuilt.

The ledger is the truth; `weapon_holdings` and `lot_holdings` are a cache kept in each movement's
transaction. Recomputing them is a few set-based statements, whatever the ledger's size."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Select, delete, func, insert, select
from sqlalchemy.orm import Session, aliased

from ..db.models import LotHolding, Movement, MovementLine, WeaponHolding
from .unit_of_work import UnitOfWork


def _weapons_from_ledger() -> Select[uuid.UUID | None, int, int]:
    """(weapon, holder, movement seq) from each weapon's last line."""
    later = aliased(MovementLine)
    return (
        select(MovementLine.weapon_id, Movement.to_holder_id, Movement.seq)
        .join(Movement, Movement.seq == MovementLine.movement_seq)
        .where(
            MovementLine.weapon_id.is_not(None),
            ~select(later.id)
            .where(
                later.weapon_id == MovementLine.weapon_id,
                later.movement_seq > MovementLine.movement_seq,
            )
            .exists(),
        )
    )


def _lots_from_ledger() -> Select[uuid.UUID | None, int, int]:
    """(lot, holder, rounds) from every credit and every debit that was not a registration."""
    credits = (
        select(
            MovementLine.lot_id.label("lot_id"),
            Movement.to_holder_id.label("holder_id"),
            MovementLine.quantity.label("delta"),
        )
        .join(Movement, Movement.seq == MovementLine.movement_seq)
        .where(MovementLine.lot_id.is_not(None))
    )
    debits = (
        select(
            MovementLine.lot_id,
            Movement.from_holder_id,
            -MovementLine.quantity,
        )
        .join(Movement, Movement.seq == MovementLine.movement_seq)
        .where(MovementLine.lot_id.is_not(None), MovementLine.registers.is_(False))
    )
    entries = credits.union_all(debits).subquery()
    total = func.sum(entries.c.delta)
    return (
        select(entries.c.lot_id, entries.c.holder_id, total)
        .group_by(entries.c.lot_id, entries.c.holder_id)
        .having(total != 0)
    )


@dataclass(frozen=True)
class Difference:
    subject: str
    ledger: object
    projection: object


def check(session: Session) -> list[Difference]:
    """Every place where the projection disagrees with the ledger (empty when all agree)."""
    differences: list[Difference] = []
    from_ledger: dict[object, int] = {w: h for w, h, _ in session.execute(_weapons_from_ledger())}
    projected: dict[object, int] = {
        w: h for w, h in session.execute(select(WeaponHolding.weapon_id, WeaponHolding.holder_id))
    }
    for weapon_id in from_ledger.keys() | projected.keys():
        if from_ledger.get(weapon_id) != projected.get(weapon_id):
            differences.append(
                Difference(
                    f"weapon {weapon_id}", from_ledger.get(weapon_id), projected.get(weapon_id)
                )
            )
    lots_ledger: dict[tuple[object, int], int] = {
        (lot, holder): q for lot, holder, q in session.execute(_lots_from_ledger())
    }
    lots_projected: dict[tuple[object, int], int] = {
        (lot, holder): q
        for lot, holder, q in session.execute(
            select(LotHolding.lot_id, LotHolding.holder_id, LotHolding.quantity).where(
                LotHolding.quantity != 0
            )
        )
    }
    for key in lots_ledger.keys() | lots_projected.keys():
        if lots_ledger.get(key, 0) != lots_projected.get(key, 0):
            differences.append(
                Difference(
                    f"lot {key[0]} at holder {key[1]}",
                    lots_ledger.get(key, 0),
                    lots_projected.get(key, 0),
                )
            )
    return differences


def rebuild(uow: UnitOfWork) -> int:
    """Replace the projection with what the ledger says; return how many rows differed."""
    differing = len(check(uow.session))
    session = uow.session
    session.execute(delete(WeaponHolding))
    session.execute(delete(LotHolding))
    session.execute(
        insert(WeaponHolding).from_select(
            ["weapon_id", "holder_id", "movement_seq"], _weapons_from_ledger()
        )
    )
    session.execute(
        insert(LotHolding).from_select(["lot_id", "holder_id", "quantity"], _lots_from_ledger())
    )
    uow.record("ledger.rebuild", "projection", {"differences_repaired": differing})
    return differing
