"""Stocktakes: a depot's clerk opens one, posts what was physically counted in batches, and closes
it. Closing compares the count with the books (the depot's current holdings), opens
`count_missing`, `count_unexpected` and `count_variance` discrepancies, and records every counted
weapon the books place in the depot as physically verified at that moment.

Everything is set-based: counts are bulk-inserted, serials resolved in a few IN queries, and the
comparison at close is a handful of joins and NOT EXISTS queries (a count may be 100,000 serials).
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, distinct, exists, func, insert, literal, select
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
from ..domain.actors import Role
from ..domain.discrepancies import DiscrepancyKind
from . import discrepancies
from .discrepancies import Finding
from .errors import Conflict, Forbidden, Invalid, NotFound
from .lines import BATCH, LineErrors, LotRef, WeaponRef, resolve_lots
from .unit_of_work import UnitOfWork

CountLine = WeaponRef | LotRef
_VERIFICATIONS: Table = WeaponVerification.__table__  # type: ignore[assignment]


def _depot(session: Session, code: str) -> Holder:
    depot = session.scalar(select(Holder).where(Holder.kind == "depot", Holder.code == code))
    if depot is None:
        raise Invalid(f"unknown depot {code!r}", field="depot")
    return depot


def _check_scope(uow: UnitOfWork, depot: Holder) -> None:
    actor = uow.actor
    if actor.role is Role.ADMIN or (actor.role is Role.CLERK and depot.code in actor.depots):
        return
    raise Forbidden(
        f"depot {depot.code} is not one of your depots "
        f"({', '.join(sorted(actor.depots)) or 'none'}); only its clerks or an admin count it"
    )


def get_stocktake(session: Session, stocktake_id: uuid.UUID) -> Stocktake:
    stocktake = session.scalar(select(Stocktake).where(Stocktake.id == stocktake_id))
    if stocktake is None:
        raise NotFound(f"no stocktake {stocktake_id}")
    return stocktake


def _open_stocktake_for_update(uow: UnitOfWork, stocktake_id: uuid.UUID) -> Stocktake:
    stocktake = get_stocktake(uow.session, stocktake_id)
    _check_scope(uow, stocktake.depot)
    if stocktake.status != "open":
        raise Conflict(
            f"stocktake {stocktake.id} of depot {stocktake.depot.code} was closed at "
            f"{stocktake.closed_at.isoformat() if stocktake.closed_at else '?'}; open a new one"
        )
    return stocktake


def open_stocktake(uow: UnitOfWork, depot_code: str) -> Stocktake:
    """Open a stocktake of `depot_code`; a depot has at most one open stocktake at a time."""
    session = uow.session
    depot = _depot(session, depot_code)
    _check_scope(uow, depot)
    already = session.scalar(
        select(Stocktake.id).where(Stocktake.depot_id == depot.id, Stocktake.status == "open")
    )
    if already is not None:
        raise Conflict(f"depot {depot.code} already has open stocktake {already}; close it first")
    stocktake = Stocktake(
        id=uuid.uuid4(),
        depot_id=depot.id,
        status="open",
        opened_at=uow.now,
        opened_by=uow.actor.name,
    )
    stocktake.depot = depot
    session.add(stocktake)
    session.flush()
    uow.record("stocktake.open", f"stocktake:{stocktake.id}", {"depot": depot.ref})
    return stocktake


@dataclass
class CountBatch:
    """What one batch of counts added."""

    stocktake: Stocktake
    weapons: int = 0
    lots: int = 0
    unknown_serials: list[dict[str, Any]] = field(default_factory=list)


def add_counts(uow: UnitOfWork, stocktake_id: uuid.UUID, lines: list[CountLine]) -> CountBatch:
    """Append counted lines to an open stocktake. Weapons are resolved by id or marking; a
    serial matching no registered weapon is kept as scanned (it is `unexpected` at close).
    Lots must be registered; the same lot counted on several lines adds up."""
    session = uow.session
    stocktake = _open_stocktake_for_update(uow, stocktake_id)
    errors = LineErrors()
    weapon_refs = [(n, line) for n, line in enumerate(lines) if isinstance(line, WeaponRef)]
    lot_refs = [(n, line) for n, line in enumerate(lines) if isinstance(line, LotRef)]
    weapons = _resolve_counted_weapons(session, stocktake.depot_id, weapon_refs, errors)
    lots = resolve_lots(session, lot_refs, errors)
    errors.raise_if_any(Invalid)

    rows: list[dict[str, Any]] = []
    batch = CountBatch(stocktake)
    for line_no, ref in weapon_refs:
        weapon_id = weapons.get(line_no)
        rows.append(
            {
                "stocktake_id": stocktake.id,
                "weapon_id": weapon_id,
                "serial": ref.serial if weapon_id is None else None,
                "manufacturer": ref.manufacturer if weapon_id is None else None,
                "item_type": ref.item_type if weapon_id is None else None,
                "lot_id": None,
                "quantity": None,
                "counted_at": uow.now,
            }
        )
        if weapon_id is None:
            batch.unknown_serials.append(
                {"serial": ref.serial, "manufacturer": ref.manufacturer, "item_type": ref.item_type}
            )
        else:
            batch.weapons += 1
    for line_no, lot_ref in lot_refs:
        rows.append(
            {
                "stocktake_id": stocktake.id,
                "weapon_id": None,
                "serial": None,
                "manufacturer": None,
                "item_type": None,
                "lot_id": lots[line_no].id,
                "quantity": lot_ref.quantity,
                "counted_at": uow.now,
            }
        )
        batch.lots += 1
    for start in range(0, len(rows), BATCH):
        session.execute(insert(StocktakeCount), rows[start : start + BATCH])
    uow.record(
        "stocktake.count",
        f"stocktake:{stocktake.id}",
        {
            "depot": stocktake.depot.ref,
            "weapon_lines": batch.weapons,
            "unknown_serials": [u["serial"] for u in batch.unknown_serials],
            "lot_lines": [[lots[n].id, ref.quantity] for n, ref in lot_refs],
        },
    )
    return batch


def _resolve_counted_weapons(
    session: Session, depot_id: int, refs: list[tuple[int, WeaponRef]], errors: LineErrors
) -> dict[int, uuid.UUID]:
    """Line number → weapon id for lines naming a registered weapon. An unknown weapon id is a
    422; an unknown serial is left out (kept as scanned); a serial several makers share resolves
    to the one the books place in this depot, else it is a 422 asking for the maker."""
    ids = sorted({ref.weapon_id for _, ref in refs if ref.weapon_id is not None})
    known_ids: set[uuid.UUID] = set()
    for start in range(0, len(ids), BATCH):
        known_ids.update(
            session.scalars(select(Weapon.id).where(Weapon.id.in_(ids[start : start + BATCH])))
        )
    serials = sorted({ref.serial for _, ref in refs if ref.weapon_id is None and ref.serial})
    by_serial: dict[str, list[tuple[uuid.UUID, str, str, bool]]] = defaultdict(list)
    for start in range(0, len(serials), BATCH):
        rows = session.execute(
            select(
                Weapon.id,
                Weapon.serial,
                Weapon.manufacturer,
                ItemType.code,
                WeaponHolding.holder_id == depot_id,
            )
            .join(ItemType, ItemType.id == Weapon.item_type_id)
            .join(WeaponHolding, WeaponHolding.weapon_id == Weapon.id)
            .where(Weapon.serial.in_(serials[start : start + BATCH]))
        )
        for wid, serial, maker, item_type, here in rows:
            by_serial[serial].append((wid, maker, item_type, bool(here)))
    resolved: dict[int, uuid.UUID] = {}
    for line_no, ref in refs:
        if ref.weapon_id is not None:
            if ref.weapon_id in known_ids:
                resolved[line_no] = ref.weapon_id
            else:
                errors.add(line_no, f"no weapon with id {ref.weapon_id}")
            continue
        candidates = [
            c
            for c in by_serial.get(ref.serial or "", [])
            if (ref.manufacturer is None or c[1] == ref.manufacturer)
            and (ref.item_type is None or c[2] == ref.item_type)
        ]
        if len(candidates) > 1:
            candidates = [c for c in candidates if c[3]] or candidates
        if len(candidates) == 1:
            resolved[line_no] = candidates[0][0]
        elif candidates:
            makers = ", ".join(sorted(f"{c[2]} {c[1]}" for c in candidates))
            errors.add(
                line_no,
                f"serial {ref.serial} is ambiguous ({makers}) and none is on this depot's "
                "books: give manufacturer and item_type",
            )
    return resolved


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
    stocktake = _open_stocktake_for_update(uow, stocktake_id)
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
    verified = _record_verifications(uow, stocktake, depot, counted_here)

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


def _weapon_columns() -> tuple[Any, ...]:
    return (Weapon.id, Weapon.serial, Weapon.manufacturer, ItemType.code)


def _missing(session: Session, stocktake: Stocktake, depot: Holder) -> list[dict[str, Any]]:
    """Weapons the books place in the depot that no line of this stocktake counted."""
    count = aliased(StocktakeCount)
    rows = session.execute(
        select(*_weapon_columns())
        .join(ItemType, ItemType.id == Weapon.item_type_id)
        .join(WeaponHolding, WeaponHolding.weapon_id == Weapon.id)
        .where(
            WeaponHolding.holder_id == depot.id,
            ~exists().where(count.stocktake_id == stocktake.id, count.weapon_id == Weapon.id),
        )
        .order_by(Weapon.serial, Weapon.id)
    )
    return [
        {"weapon_id": wid, "serial": serial, "manufacturer": maker, "item_type": item_type}
        for wid, serial, maker, item_type in rows
    ]


def _unexpected(session: Session, stocktake: Stocktake, depot: Holder) -> list[dict[str, Any]]:
    """Counted registered weapons the books place somewhere other than this depot."""
    counted = (
        select(StocktakeCount.weapon_id)
        .where(StocktakeCount.stocktake_id == stocktake.id, StocktakeCount.weapon_id.is_not(None))
        .distinct()
        .subquery()
    )
    rows = session.execute(
        select(
            Weapon.id, Weapon.serial, Weapon.manufacturer, ItemType.code, Holder.kind, Holder.code
        )
        .join(counted, counted.c.weapon_id == Weapon.id)
        .join(ItemType, ItemType.id == Weapon.item_type_id)
        .join(WeaponHolding, WeaponHolding.weapon_id == Weapon.id)
        .join(Holder, Holder.id == WeaponHolding.holder_id)
        .where(WeaponHolding.holder_id != depot.id)
        .order_by(Weapon.serial, Weapon.id)
    )
    return [
        {
            "weapon_id": wid,
            "serial": serial,
            "manufacturer": maker,
            "item_type": item_type,
            "books": f"{kind}:{code}",
        }
        for wid, serial, maker, item_type, kind, code in rows
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
) -> int:
    """Upsert "verified now" for every counted weapon the books place in the depot (one
    INSERT … SELECT … ON CONFLICT); return how many."""
    session = uow.session
    source = select(
        WeaponHolding.weapon_id,
        _bind(uow.now, WeaponVerification.verified_at),
        _bind(stocktake.id, WeaponVerification.stocktake_id),
    ).where(WeaponHolding.holder_id == depot.id, WeaponHolding.weapon_id.in_(counted_here))
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
    verified = session.scalar(select(func.count()).select_from(source.subquery()))
    return int(verified or 0)


def _bind(value: Any, column: Any) -> Any:
    return literal(value, type_=column.type)


def _missing_finding(stocktake: Stocktake, depot: Holder, weapon: dict[str, Any]) -> Finding:
    return Finding(
        DiscrepancyKind.COUNT_MISSING,
        f"weapon:{weapon['weapon_id']}",
        f"weapon {weapon['item_type']} {weapon['manufacturer']} {weapon['serial']} is on the "
        f"books of depot {depot.code} but was not counted in stocktake {stocktake.id}",
        depot=depot,
        holder=depot,
        weapon_id=weapon["weapon_id"],
        stocktake_id=stocktake.id,
    )


def _unexpected_finding(stocktake: Stocktake, depot: Holder, weapon: dict[str, Any]) -> Finding:
    marking = " ".join(p for p in (weapon["item_type"], weapon["manufacturer"]) if p)
    label = f"weapon {marking} {weapon['serial']}".replace("  ", " ")
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
        f"lot {variance['item_type']} {variance['lot_number']}: depot {depot.code}'s books say "
        f"{variance['expected']} rounds, stocktake {stocktake.id} counted {variance['counted']} "
        f"({abs(difference)} {'short' if short else 'over'})",
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
