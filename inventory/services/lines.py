"""Movement lines as requested, and their resolution against the registry in a few set-based
queries (never one query per line: a movement carries up to 10,000 lines)."""

from __future__ import annotations

import functools
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from ..db.bulk import among_param
from ..db.engine import rows_of
from ..db.models import ItemType, Lot, Weapon
from ..domain.prose import lot_label, weapon_label
from .errors import Invalid

BATCH = 5_000  # bound parameters per IN (SQLite allows 32,766)


@dataclass(frozen=True)
class WeaponRegistration:
    manufacturer: str
    item_type: str
    serial: str | None = None  # None only for an obliterated serial: the registry assigns one
    marking_status: str = "intact"
    origin: str | None = None
    year_of_manufacture: int | None = None
    country_of_manufacture: str | None = None
    import_marks: str | None = None


@dataclass(frozen=True)
class WeaponRef:
    weapon_id: uuid.UUID | None = None
    serial: str | None = None
    manufacturer: str | None = None
    item_type: str | None = None


@dataclass(frozen=True)
class LotRegistration:
    lot_number: str
    item_type: str
    quantity: int
    manufacturer: str | None = None
    year_of_manufacture: int | None = None


@dataclass(frozen=True)
class LotRef:
    quantity: int
    lot_id: uuid.UUID | None = None
    lot_number: str | None = None
    item_type: str | None = None


Line = WeaponRegistration | WeaponRef | LotRegistration | LotRef


def reference_from(fields: dict[str, Any]) -> WeaponRef | LotRef:
    """The weapon or lot a validated request line names (lot lines carry a quantity)."""
    if "lot_id" in fields or "lot_number" in fields:
        return LotRef(
            quantity=fields["quantity"],
            lot_id=fields.get("lot_id"),
            lot_number=fields.get("lot_number"),
            item_type=fields.get("item_type"),
        )
    return WeaponRef(
        weapon_id=fields.get("weapon_id"),
        serial=fields.get("serial"),
        manufacturer=fields.get("manufacturer"),
        item_type=fields.get("item_type"),
    )


@dataclass(frozen=True)
class WeaponRow:
    """What a message about a weapon needs: its id and how it is marked."""

    id: uuid.UUID
    serial: str
    manufacturer: str
    item_type: str
    category: str = "weapon"

    @property
    def label(self) -> str:
        return weapon_label(self.item_type, self.manufacturer, self.serial)


@dataclass(frozen=True)
class LotRow:
    id: uuid.UUID
    lot_number: str
    item_type: str
    manufacturer: str | None = None
    year_of_manufacture: int | None = None

    @property
    def label(self) -> str:
        return lot_label(self.item_type, self.lot_number)


class LineErrors:
    """Collects per-line problems so one response names every bad line (up to a limit)."""

    LIMIT = 50

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, line_no: int, message: str) -> None:
        if len(self.errors) < self.LIMIT:
            self.errors.setdefault(f"lines[{line_no}]", []).append(message)

    def raise_if_any(self, error_class: type[Invalid] | Any = Invalid) -> None:
        if not self.errors:
            return
        first_field, first = next(iter(self.errors.items()))
        more = len(self.errors) - 1
        detail = f"{first_field}: {first[0]}" + (f" (and {more} more lines)" if more else "")
        raise error_class(detail, errors=self.errors)


def _chunks(values: list[Any]) -> list[list[Any]]:
    return [values[i : i + BATCH] for i in range(0, len(values), BATCH)]


def item_types_by_code(session: Session, codes: set[str]) -> dict[str, ItemType]:
    if not codes:
        return {}
    rows = session.scalars(select(ItemType).where(ItemType.code.in_(sorted(codes))))
    return {item_type.code: item_type for item_type in rows}


@functools.cache
def _weapons_by(dialect: str, key: str) -> Select[uuid.UUID, str, str, str, str]:
    """Weapons whose `key` (id or serial) is among :values; built once (every movement asks)."""
    return (
        select(Weapon.id, Weapon.serial, Weapon.manufacturer, ItemType.code, ItemType.category)
        .join(ItemType, Weapon.item_type_id == ItemType.id)
        .where(among_param(dialect, getattr(Weapon, key), "values"))
    )


def _weapon_rows(session: Session, key: str, values: list[Any]) -> list[WeaponRow]:
    statement = _weapons_by(session.get_bind().dialect.name, key)
    return [WeaponRow(*row) for row in rows_of(session, statement, {"values": values})]


def unknown_weapon(ref: WeaponRef) -> str:
    """What a line naming no weapon is told; also what a clerk is told of a weapon outside their
    depots, so the two cannot be told apart."""
    if ref.weapon_id is not None:
        return f"no weapon with id {ref.weapon_id}"
    return (
        f"no registered weapon with serial {ref.serial}"
        + (f" by {ref.manufacturer}" if ref.manufacturer else "")
        + (f" of type {ref.item_type}" if ref.item_type else "")
    )


def resolve_weapons(
    session: Session, refs: list[tuple[int, WeaponRef]], errors: LineErrors
) -> dict[int, WeaponRow]:
    """Map each line number to the weapon it names; unknown or ambiguous ones go to `errors`."""
    by_id: dict[uuid.UUID, WeaponRow] = {}
    ids = sorted({ref.weapon_id for _, ref in refs if ref.weapon_id is not None})
    for chunk in _chunks(ids):
        by_id.update((row.id, row) for row in _weapon_rows(session, "id", chunk))
    by_serial: dict[str, list[WeaponRow]] = defaultdict(list)
    serials = sorted({ref.serial for _, ref in refs if ref.weapon_id is None and ref.serial})
    for chunk in _chunks(serials):
        for row in _weapon_rows(session, "serial", chunk):
            by_serial[row.serial].append(row)

    resolved: dict[int, WeaponRow] = {}
    for line_no, ref in refs:
        if ref.weapon_id is not None:
            found = by_id.get(ref.weapon_id)
            if found is None:
                errors.add(line_no, unknown_weapon(ref))
            else:
                resolved[line_no] = found
            continue
        candidates = [
            row
            for row in by_serial.get(ref.serial or "", [])
            if (ref.manufacturer is None or row.manufacturer == ref.manufacturer)
            and (ref.item_type is None or row.item_type == ref.item_type)
        ]
        if not candidates:
            errors.add(line_no, unknown_weapon(ref))
        elif len(candidates) > 1:
            makers = ", ".join(sorted(f"{c.item_type} {c.manufacturer}" for c in candidates))
            errors.add(
                line_no,
                f"serial {ref.serial} is ambiguous ({makers}): give manufacturer and item_type",
            )
        else:
            resolved[line_no] = candidates[0]
    return resolved


def existing_weapons(
    session: Session, registrations: list[tuple[int, WeaponRegistration]], type_ids: dict[str, int]
) -> set[tuple[str, int, str]]:
    """Identities (manufacturer, item type id, serial) among `registrations` already registered."""
    serials = sorted({reg.serial for _, reg in registrations if reg.serial})
    found: set[tuple[str, int, str]] = set()
    for chunk in _chunks(serials):
        rows = session.execute(
            select(Weapon.manufacturer, Weapon.item_type_id, Weapon.serial).where(
                Weapon.serial.in_(chunk)
            )
        )
        found.update((m, t, s) for m, t, s in rows)
    return found


def resolve_lots(
    session: Session, refs: list[tuple[int, LotRef]], errors: LineErrors
) -> dict[int, LotRow]:
    if not refs:
        return {}
    ids = sorted({ref.lot_id for _, ref in refs if ref.lot_id is not None})
    numbers = sorted({ref.lot_number for _, ref in refs if ref.lot_id is None and ref.lot_number})
    stmt = select(Lot.id, Lot.lot_number, ItemType.code).join(
        ItemType, Lot.item_type_id == ItemType.id
    )
    by_id: dict[uuid.UUID, LotRow] = {}
    by_number: dict[str, list[LotRow]] = defaultdict(list)
    for chunk in _chunks(ids):
        by_id.update((r[0], LotRow(*r)) for r in session.execute(stmt.where(Lot.id.in_(chunk))))
    for chunk in _chunks(numbers):
        for r in session.execute(stmt.where(Lot.lot_number.in_(chunk))):
            by_number[r[1]].append(LotRow(*r))

    resolved: dict[int, LotRow] = {}
    for line_no, ref in refs:
        if ref.lot_id is not None:
            found = by_id.get(ref.lot_id)
            if found is None:
                errors.add(line_no, f"no lot with id {ref.lot_id}")
            else:
                resolved[line_no] = found
            continue
        candidates = [
            row
            for row in by_number.get(ref.lot_number or "", [])
            if ref.item_type is None or row.item_type == ref.item_type
        ]
        if not candidates:
            errors.add(
                line_no,
                f"no registered lot {ref.lot_number}"
                + (f" of type {ref.item_type}" if ref.item_type else ""),
            )
        elif len(candidates) > 1:
            errors.add(line_no, f"lot number {ref.lot_number} is ambiguous: give item_type")
        else:
            resolved[line_no] = candidates[0]
    return resolved


def lots_by_identity(
    session: Session, registrations: list[tuple[int, LotRegistration]], type_ids: dict[str, int]
) -> dict[tuple[int, str], LotRow]:
    """Lots among `registrations` already registered, keyed by (item type id, lot number)."""
    numbers = sorted({reg.lot_number for _, reg in registrations})
    found: dict[tuple[int, str], LotRow] = {}
    for chunk in _chunks(numbers):
        rows = session.execute(
            select(
                Lot.id,
                Lot.lot_number,
                ItemType.code,
                Lot.manufacturer,
                Lot.year_of_manufacture,
                Lot.item_type_id,
            )
            .join(ItemType, Lot.item_type_id == ItemType.id)
            .where(Lot.lot_number.in_(chunk))
        )
        for lot_id, number, code, maker, year, type_id in rows:
            found[(type_id, number)] = LotRow(lot_id, number, code, maker, year)
    return found
