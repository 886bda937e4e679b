"""The current-holdings projection, recomputed from the ledger: compared (`check`) or rebuilt.

The ledger is the truth; `weapon_holdings` and `lot_holdings` are a cache kept in each movement's
transaction, and so are their summaries for the report (`holder_weapon_counts`,
`in_store_freshness`: see holder_counts). Recomputing them is a few set-based statements,
whatever the ledger's size."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, delete, func, insert, select
from sqlalchemy.orm import Session, aliased

from ..db.models import (
    HolderWeaponCount,
    InStoreFreshness,
    LotHolding,
    Movement,
    MovementLine,
    WeaponHolding,
)
from . import holder_counts
from .unit_of_work import UnitOfWork


def _weapons_from_ledger() -> Select[uuid.UUID | None, int, int]:
    """(weapon, holder, movement seq) from each weapon's last line."""
    later = aliased(MovementLine)
    return (
        select(
            MovementLine.weapon_id.label("weapon_id"),
            Movement.to_holder_id.label("holder_id"),
            Movement.seq.label("movement_seq"),
        )
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
    return differences + _summary_differences(session)


def _ledger_positions() -> Any:
    """Each weapon's holder and the movement that put it there, from its last line."""
    return _weapons_from_ledger().subquery()


def _summary_differences(session: Session) -> list[Difference]:
    """Where the report's counters (holder_counts) disagree with counting the ledger's weapons."""
    differences: list[Difference] = []
    positions = _ledger_positions()
    summaries = (
        (
            "weapons {1} holder {0}",
            holder_counts.counts_from(positions),
            select(HolderWeaponCount.holder_id, HolderWeaponCount.lost, HolderWeaponCount.weapons),
        ),
        (
            "weapons in depot {0}'s store fresh since {1}",
            holder_counts.freshness_from(positions),
            select(
                InStoreFreshness.holder_id, InStoreFreshness.fresh_since, InStoreFreshness.weapons
            ),
        ),
    )
    for subject, computed, kept in summaries:
        expected = {(a, b): n for a, b, n in session.execute(computed)}
        counted = {(a, b): n for a, b, n in session.execute(kept) if n != 0}
        for key in sorted(expected.keys() | counted.keys(), key=str):
            if expected.get(key, 0) != counted.get(key, 0):
                differences.append(
                    Difference(
                        subject.format(key[0], _side(key[1])),
                        expected.get(key, 0),
                        counted.get(key, 0),
                    )
                )
    return differences


def _side(value: object) -> object:
    if isinstance(value, bool):
        return "lost from" if value else "held by"
    return value


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
    session.execute(delete(HolderWeaponCount))
    session.execute(delete(InStoreFreshness))
    holdings = select(
        WeaponHolding.weapon_id, WeaponHolding.holder_id, WeaponHolding.movement_seq
    ).subquery()
    session.execute(
        insert(HolderWeaponCount).from_select(
            ["holder_id", "lost", "weapons"], holder_counts.counts_from(holdings)
        )
    )
    session.execute(
        insert(InStoreFreshness).from_select(
            ["holder_id", "fresh_since", "weapons"], holder_counts.freshness_from(holdings)
        )
    )
    uow.record("ledger.rebuild", "projection", {"differences_repaired": differing})
    return differing
