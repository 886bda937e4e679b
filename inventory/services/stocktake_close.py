"""Closing a stocktake: compare the count with the books (the depot's current holdings), open
`count_missing`, `count_unexpected` and `count_variance` discrepancies, and record every counted
weapon the books place in the depot as physically verified at that moment.

Set-based throughout: a handful of joins and NOT EXISTS queries and one INSERT … SELECT … ON
CONFLICT, whatever the size of the count."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, distinct, exists, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from ..db.models import (
    Holder,
    ItemType,
    Lot,
    LotHolding,
    Stocktake,
    StocktakeCount,
    Weapon,
    WeaponHolding,
    WeaponVerification,
)
from ..domain import policy
from ..domain.discrepancies import DiscrepancyKind
from ..domain.prose import lot_label, weapon_label
from . import discrepancies, holder_counts, stocktakes
from .discrepancies import Finding
from .unit_of_work import UnitOfWork

_VERIFICATIONS: Table = WeaponVerification.__table__  # type: ignore[assignment]


@dataclass
class StocktakeResult:
    """What closing found: the weapons expected and counted, and every difference."""

    stocktake: Stocktake
    expected: int
    counted: int
    missing: list[dict[str, Any]]
    unexpected: list[dict[str, Any]]
    lot_variances: list[dict[str, Any]]
    discrepancies: list[uuid.UUID]
    verified: int


def close_stocktake(uow: UnitOfWork, stocktake_id: uuid.UUID) -> StocktakeResult:
    """Compare the count with the books, open a discrepancy for each difference, record the
    counted weapons the books place here as verified now, and close the stocktake."""
    session = uow.session
    stocktake = stocktakes.locked_open_stocktake(uow, stocktake_id, policy.Action.STOCKTAKE_CLOSE)
    depot = stocktake.depot
    counted_here = select(StocktakeCount.weapon_id).where(
        StocktakeCount.stocktake_id == stocktake.id, StocktakeCount.weapon_id.is_not(None)
    )
    expected = session.scalar(
        select(func.count()).select_from(WeaponHolding).where(WeaponHolding.holder_id == depot.id)
    )
    counted_weapons = session.scalar(
        select(func.count(distinct(StocktakeCount.weapon_id))).where(
            StocktakeCount.stocktake_id == stocktake.id
        )
    )
    missing = _missing(session, stocktake, depot)
    unexpected = _unexpected(session, stocktake, depot) + _unknown(session, stocktake)
    variances = _lot_variances(session, stocktake, depot)
    holder_counts.record_verification(session, depot, counted_here, uow.now)
    _record_verifications(uow, stocktake, depot, counted_here)
    # Counted weapons the books place here are the counted ones not placed elsewhere.
    verified = (counted_weapons or 0) - sum(1 for u in unexpected if u["weapon_id"] is not None)

    findings = [_missing_finding(stocktake, depot, w) for w in missing]
    findings += [_unexpected_finding(stocktake, depot, w) for w in unexpected]
    findings += [_variance_finding(stocktake, depot, v) for v in variances]
    opened = discrepancies.open_findings(uow, findings)
    by_key = {(d.kind, d.subject_key): d.id for d in opened}
    stocktake.status, stocktake.closed_at, stocktake.closed_by = "closed", uow.now, uow.actor.name
    result = StocktakeResult(
        stocktake=stocktake,
        expected=expected or 0,
        counted=(counted_weapons or 0)
        + len({_marking(u) for u in unexpected if u["weapon_id"] is None}),
        missing=missing,
        unexpected=unexpected,
        lot_variances=variances,
        discrepancies=[
            by_key[(str(f.kind), f.subject_key)]
            for f in findings
            if (str(f.kind), f.subject_key) in by_key
        ],
        verified=verified,
    )
    uow.record(
        "stocktake.close",
        f"stocktake:{stocktake.id}",
        {
            "depot": depot.ref,
            "expected": result.expected,
            "counted": result.counted,
            "missing": len(missing),
            "unexpected": len(unexpected),
            "lot_variances": [[v["lot_id"], v["expected"], v["counted"]] for v in variances],
            "verified": verified,
        },
    )
    return result


def _described(weapon_id: Any) -> tuple[Any, ...]:
    """The serial, maker and item type of the weapon `weapon_id` names, as correlated subqueries:
    looked up only for the weapons a query returns (one primary-key read each), never by joining
    all the register's weapons, whatever the planner guesses of a count whose statistics lag."""
    this = Weapon.id == weapon_id
    return (
        select(Weapon.serial).where(this).scalar_subquery(),
        select(Weapon.manufacturer).where(this).scalar_subquery(),
        select(ItemType.code)
        .join(Weapon, Weapon.item_type_id == ItemType.id)
        .where(this)
        .scalar_subquery(),
    )


def _missing(session: Session, stocktake: Stocktake, depot: Holder) -> list[dict[str, Any]]:
    """Weapons the books place in the depot that no line of this stocktake counted."""
    count = aliased(StocktakeCount)
    # From the depot's own holdings (by holder): the work grows with the depot, not the register.
    serial, maker, item_type = _described(WeaponHolding.weapon_id)
    rows = session.execute(
        select(WeaponHolding.weapon_id, serial, maker, item_type)
        .where(
            WeaponHolding.holder_id == depot.id,
            ~exists().where(
                count.stocktake_id == stocktake.id, count.weapon_id == WeaponHolding.weapon_id
            ),
        )
        .order_by(serial, WeaponHolding.weapon_id)
    )
    return [
        {"weapon_id": wid, "serial": serial, "manufacturer": maker, "item_type": item_type}
        for wid, serial, maker, item_type in rows
    ]


def _unexpected(session: Session, stocktake: Stocktake, depot: Holder) -> list[dict[str, Any]]:
    """Counted registered weapons the books place somewhere other than this depot."""
    here = aliased(WeaponHolding)
    elsewhere = (
        select(StocktakeCount.weapon_id)
        .where(
            StocktakeCount.stocktake_id == stocktake.id,
            StocktakeCount.weapon_id.is_not(None),
            ~exists().where(here.weapon_id == StocktakeCount.weapon_id, here.holder_id == depot.id),
        )
        .distinct()
        .subquery()
    )
    # Every weapon has one holding (its primary key), so "not held here" is "held elsewhere".
    books = (
        select(Holder.kind + ":" + Holder.code)
        .join(WeaponHolding, WeaponHolding.holder_id == Holder.id)
        .where(WeaponHolding.weapon_id == elsewhere.c.weapon_id)
        .scalar_subquery()
    )
    serial, maker, item_type = _described(elsewhere.c.weapon_id)
    rows = session.execute(
        select(elsewhere.c.weapon_id, serial, maker, item_type, books).order_by(
            serial, elsewhere.c.weapon_id
        )
    )
    return [
        {
            "weapon_id": wid,
            "serial": serial,
            "manufacturer": maker,
            "item_type": item_type,
            "books": books,
        }
        for wid, serial, maker, item_type, books in rows
    ]


def _unknown(session: Session, stocktake: Stocktake) -> list[dict[str, Any]]:
    """Scanned serials that match no registered weapon, each marking once."""
    rows = session.execute(
        select(StocktakeCount.serial, StocktakeCount.manufacturer, StocktakeCount.item_type)
        .where(
            StocktakeCount.stocktake_id == stocktake.id,
            StocktakeCount.weapon_id.is_(None),
            StocktakeCount.serial.is_not(None),
        )
        .distinct()
        .order_by(StocktakeCount.serial)
    )
    return [
        {"weapon_id": None, "serial": s, "manufacturer": m, "item_type": t, "books": None}
        for s, m, t in rows
    ]


def _marking(item: dict[str, Any]) -> tuple[str, str, str]:
    return (item["serial"], item["manufacturer"] or "", item["item_type"] or "")


def _lot_variances(session: Session, stocktake: Stocktake, depot: Holder) -> list[dict[str, Any]]:
    """Per lot, the rounds on the books here and the rounds counted, where they differ."""
    books: dict[uuid.UUID, int] = {
        lot_id: quantity
        for lot_id, quantity in session.execute(
            select(LotHolding.lot_id, LotHolding.quantity).where(
                LotHolding.holder_id == depot.id, LotHolding.quantity > 0
            )
        )
    }
    counted: dict[uuid.UUID, int] = {
        lot_id: int(total or 0)
        for lot_id, total in session.execute(
            select(StocktakeCount.lot_id, func.sum(StocktakeCount.quantity))
            .where(StocktakeCount.stocktake_id == stocktake.id, StocktakeCount.lot_id.is_not(None))
            .group_by(StocktakeCount.lot_id)
        )
        if lot_id is not None
    }
    differing = sorted(
        (
            lot_id
            for lot_id in books.keys() | counted.keys()
            if books.get(lot_id, 0) != counted.get(lot_id, 0)
        ),
        key=str,
    )
    labels = (
        dict(
            (lot_id, (number, code))
            for lot_id, number, code in session.execute(
                select(Lot.id, Lot.lot_number, ItemType.code)
                .join(ItemType, ItemType.id == Lot.item_type_id)
                .where(Lot.id.in_(differing))
            )
        )
        if differing
        else {}
    )
    return [
        {
            "lot_id": lot_id,
            "lot_number": labels[lot_id][0],
            "item_type": labels[lot_id][1],
            "expected": books.get(lot_id, 0),
            "counted": counted.get(lot_id, 0),
        }
        for lot_id in differing
    ]


def _record_verifications(
    uow: UnitOfWork, stocktake: Stocktake, depot: Holder, counted_here: Any
) -> None:
    """Upsert "verified now" for every counted weapon the books place in the depot (one
    INSERT … SELECT … ON CONFLICT)."""
    session = uow.session
    source = holder_counts.in_store_among(
        select(
            WeaponHolding.weapon_id,
            _bind(uow.now, WeaponVerification.verified_at),
            _bind(stocktake.id, WeaponVerification.stocktake_id),
        ),
        depot,
        counted_here,
    )
    dialect = session.get_bind().dialect.name
    upsert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_VERIFICATIONS)
    statement = upsert.from_select(["weapon_id", "verified_at", "stocktake_id"], source)
    statement = statement.on_conflict_do_update(
        index_elements=[_VERIFICATIONS.c.weapon_id],
        set_={
            "verified_at": statement.excluded.verified_at,
            "stocktake_id": statement.excluded.stocktake_id,
        },
    )
    session.execute(statement)


def _bind(value: Any, column: Any) -> Any:
    return literal(value, type_=column.type)


def _missing_finding(stocktake: Stocktake, depot: Holder, weapon: dict[str, Any]) -> Finding:
    return Finding(
        DiscrepancyKind.COUNT_MISSING,
        f"weapon:{weapon['weapon_id']}",
        f"{weapon_label(weapon['item_type'], weapon['manufacturer'], weapon['serial'])} is on "
        f"the books of depot {depot.code} but was not counted in stocktake {stocktake.id}",
        depot=depot,
        holder=depot,
        weapon_id=weapon["weapon_id"],
        stocktake_id=stocktake.id,
    )


def _unexpected_finding(stocktake: Stocktake, depot: Holder, weapon: dict[str, Any]) -> Finding:
    label = weapon_label(weapon["item_type"], weapon["manufacturer"], weapon["serial"])
    if weapon["weapon_id"] is None:
        key = _bounded("serial:" + "/".join(_marking(weapon)))
        where = "matches no registered weapon"
    else:
        key, where = f"weapon:{weapon['weapon_id']}", f"is on the books of {weapon['books']}"
    return Finding(
        DiscrepancyKind.COUNT_UNEXPECTED,
        key,
        f"{label} was counted in depot {depot.code} (stocktake {stocktake.id}) but {where}",
        depot=depot,
        holder=depot,
        weapon_id=weapon["weapon_id"],
        stocktake_id=stocktake.id,
    )


def _variance_finding(stocktake: Stocktake, depot: Holder, variance: dict[str, Any]) -> Finding:
    difference = variance["counted"] - variance["expected"]
    short = difference < 0
    return Finding(
        DiscrepancyKind.COUNT_VARIANCE,
        f"lot:{variance['lot_id']}@depot:{depot.code}",
        f"{lot_label(variance['item_type'], variance['lot_number'])}: depot {depot.code}'s books "
        f"say {variance['expected']} rounds, stocktake {stocktake.id} counted "
        f"{variance['counted']} ({abs(difference)} {'short' if short else 'over'})",
        depot=depot,
        holder=depot,
        severity="high" if short else "medium",
        lot_id=variance["lot_id"],
        quantity=abs(difference),
        stocktake_id=stocktake.id,
    )


def _bounded(key: str) -> str:
    """Subject keys fit 200 characters; a longer marking is kept as its digest."""
    return key if len(key) <= 200 else "serial-sha256:" + hashlib.sha256(key.encode()).hexdigest()
