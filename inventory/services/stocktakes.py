"""Stocktakes: a depot's clerk opens one and posts what was physically counted, in batches of up
to 10,000 lines (a count may be 100,000 serials). Counts are bulk-inserted and serials resolved
in a few IN queries, never one query per line. Closing is in `stocktake_close`."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from ..db.models import (
    Holder,
    ItemType,
    Stocktake,
    StocktakeCount,
    Weapon,
    WeaponHolding,
)
from ..domain.policy import Action
from . import accountability
from .errors import Conflict, Invalid, NotFound
from .lines import BATCH, LineErrors, LotRef, WeaponRef, resolve_lots
from .unit_of_work import UnitOfWork

CountLine = WeaponRef | LotRef


# Advisory lock namespace for "opening a stocktake of depot <id>" (PostgreSQL).
_OPENING_STOCKTAKE = 5_001


def _depot(session: Session, code: str) -> Holder:
    """The depot, locked so two clerks cannot open two stocktakes of it at once."""
    depot = session.scalar(select(Holder).where(Holder.kind == "depot", Holder.code == code))
    if depot is None:
        raise Invalid(f"unknown depot {code!r}", field="depot")
    if session.get_bind().dialect.name == "postgresql":
        # An advisory lock, not FOR UPDATE: the app role may not update holders, and a row lock
        # needs that privilege. (SQLite writers queue one at a time anyway.)
        session.execute(select(func.pg_advisory_xact_lock(_OPENING_STOCKTAKE, depot.id)))
    return depot


def locked_open_stocktake(
    uow: UnitOfWork, stocktake_id: uuid.UUID, action: Action = Action.STOCKTAKE_COUNT
) -> Stocktake:
    """The open stocktake, locked: a batch of counts and the close never interleave. Another
    depot's stocktake is 404 to a clerk, as if it did not exist."""
    stocktake = uow.session.scalar(
        select(Stocktake).where(Stocktake.id == stocktake_id).with_for_update(of=Stocktake)
    )
    if stocktake is None:
        raise NotFound(f"no stocktake {stocktake_id}")
    accountability.require(
        uow, action, depot=stocktake.depot.code, hide=f"no stocktake {stocktake_id}"
    )
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
    accountability.require(uow, Action.STOCKTAKE_OPEN, depot=depot.code)
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
    stocktake = locked_open_stocktake(uow, stocktake_id)
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
