"""Planning a movement: its request, and the resolution and checking of every line against the
registry and the posting rules, before anything is written. Bad lines raise 422 and lines the
books refuse raise 409, each naming its line."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from ..domain.movements import Kind, Rule
from .errors import Conflict, Invalid
from .lines import (
    Line,
    LineErrors,
    LotRef,
    LotRegistration,
    LotRow,
    WeaponRef,
    WeaponRegistration,
    WeaponRow,
    existing_weapons,
    item_types_by_code,
    lots_by_identity,
    resolve_lots,
    resolve_weapons,
    unknown_weapon,
)


@dataclass(frozen=True)
class MovementRequest:
    kind: Kind
    occurred_at: datetime
    lines: list[Line]
    source: str | None = None
    destination: str | None = None
    document_ref: str | None = None
    due_back_at: datetime | None = None
    case_ref: str | None = None
    reason: str | None = None
    certificate_ref: str | None = None
    reverses: uuid.UUID | None = None
    note: str | None = None


@dataclass(frozen=True)
class PostedLine:
    line_no: int
    quantity: int
    weapon: WeaponRow | None = None
    lot: LotRow | None = None
    registers: bool = False


@dataclass
class Plan:
    """What a movement will do, worked out and checked before anything is written."""

    lines: list[PostedLine] = field(default_factory=list)
    moving_weapons: list[tuple[int, WeaponRow]] = field(default_factory=list)
    new_weapons: list[dict[str, Any]] = field(default_factory=list)
    new_lots: list[dict[str, Any]] = field(default_factory=list)
    lot_debits: dict[uuid.UUID, int] = field(default_factory=lambda: defaultdict(int))
    lot_credits: dict[uuid.UUID, int] = field(default_factory=lambda: defaultdict(int))
    lot_labels: dict[uuid.UUID, tuple[int, LotRow]] = field(default_factory=dict)
    # What each weapon line would be told if it named no weapon (see ledger.lock_weapons).
    unknown: dict[int, str] = field(default_factory=dict)


def plan_lines(session: Session, rule: Rule, request: MovementRequest) -> Plan:
    """Resolve and check every line; raise 422 for bad lines and 409 for lines the books refuse."""
    errors, conflicts = LineErrors(), LineErrors()
    weapon_regs: list[tuple[int, WeaponRegistration]] = []
    weapon_refs: list[tuple[int, WeaponRef]] = []
    lot_regs: list[tuple[int, LotRegistration]] = []
    lot_refs: list[tuple[int, LotRef]] = []
    for line_no, line in enumerate(request.lines):
        if isinstance(line, WeaponRegistration | LotRegistration) and not rule.registers:
            errors.add(
                line_no,
                f"a {request.kind} moves registered items; give weapon_id/serial "
                "or lot_id/lot_number",
            )
        elif isinstance(line, WeaponRef | LotRef) and request.kind is Kind.RECEIPT:
            errors.add(line_no, "a receipt registers what arrived: give `weapon` or `lot`")
        elif isinstance(line, WeaponRegistration | WeaponRef) and rule.ammunition_only:
            errors.add(line_no, f"a {request.kind} is for ammunition only")
        elif isinstance(line, WeaponRegistration):
            weapon_regs.append((line_no, line))
        elif isinstance(line, WeaponRef):
            weapon_refs.append((line_no, line))
        elif isinstance(line, LotRegistration):
            lot_regs.append((line_no, line))
        else:
            lot_refs.append((line_no, line))
    types = item_types_by_code(
        session, {r.item_type for _, r in weapon_regs} | {r.item_type for _, r in lot_regs}
    )
    plan = Plan()
    _plan_weapon_registrations(session, request, weapon_regs, types, plan, errors, conflicts)
    _plan_lot_registrations(session, lot_regs, types, plan, errors)
    _plan_weapon_moves(session, weapon_refs, plan, errors)
    _plan_lot_moves(session, lot_refs, plan, errors)
    errors.raise_if_any(Invalid)
    conflicts.raise_if_any(Conflict)
    plan.lines.sort(key=lambda line: line.line_no)
    return plan


def _plan_weapon_registrations(
    session: Session,
    request: MovementRequest,
    regs: list[tuple[int, WeaponRegistration]],
    types: dict[str, Any],
    plan: Plan,
    errors: LineErrors,
    conflicts: LineErrors,
) -> None:
    type_ids = {code: item_type.id for code, item_type in types.items()}
    already = existing_weapons(session, regs, type_ids)
    seen: dict[tuple[str, int, str], int] = {}
    default_origin = "procured" if request.kind is Kind.RECEIPT else "recovered"
    for line_no, reg in regs:
        item_type = types.get(reg.item_type)
        if item_type is None or item_type.category != "weapon":
            errors.add(line_no, f"{reg.item_type!r} is not a weapon item type")
            continue
        serial = reg.serial or registry_serial()
        identity = (reg.manufacturer, item_type.id, serial)
        row = WeaponRow(uuid.uuid4(), serial, reg.manufacturer, reg.item_type)
        if identity in already:
            conflicts.add(line_no, f"{row.label} is already registered")
        elif identity in seen:
            errors.add(line_no, f"{row.label} is also on line {seen[identity]}")
        seen[identity] = line_no
        plan.new_weapons.append(
            {
                "id": row.id,
                "item_type_id": item_type.id,
                "manufacturer": reg.manufacturer,
                "serial": serial,
                "marking_status": reg.marking_status,
                "origin": reg.origin or default_origin,
                "year_of_manufacture": reg.year_of_manufacture,
                "country_of_manufacture": reg.country_of_manufacture,
                "import_marks": reg.import_marks,
            }
        )
        plan.lines.append(PostedLine(line_no, 1, weapon=row, registers=True))


def registry_serial() -> str:
    """The serial the registry gives a weapon whose own serial is obliterated."""
    return f"REG-{uuid.uuid4().hex[:12].upper()}"


def _plan_lot_registrations(
    session: Session,
    regs: list[tuple[int, LotRegistration]],
    types: dict[str, Any],
    plan: Plan,
    errors: LineErrors,
) -> None:
    type_ids = {code: item_type.id for code, item_type in types.items()}
    known = lots_by_identity(session, regs, type_ids)
    for line_no, reg in regs:
        item_type = types.get(reg.item_type)
        if item_type is None or item_type.category != "ammunition":
            errors.add(line_no, f"{reg.item_type!r} is not an ammunition item type")
            continue
        key = (item_type.id, reg.lot_number)
        lot = known.get(key)
        if lot is None:  # a new lot; a second line for it in this receipt tops it up
            lot = LotRow(
                uuid.uuid4(),
                reg.lot_number,
                reg.item_type,
                reg.manufacturer,
                reg.year_of_manufacture,
            )
            known[key] = lot
            plan.new_lots.append(
                {
                    "id": lot.id,
                    "item_type_id": item_type.id,
                    "lot_number": reg.lot_number,
                    "manufacturer": reg.manufacturer,
                    "year_of_manufacture": reg.year_of_manufacture,
                }
            )
        elif reg.manufacturer and lot.manufacturer and reg.manufacturer != lot.manufacturer:
            errors.add(
                line_no,
                f"{lot.label} is registered as made by {lot.manufacturer}, not {reg.manufacturer}",
            )
            continue
        plan.lot_credits[lot.id] += reg.quantity
        plan.lines.append(PostedLine(line_no, reg.quantity, lot=lot, registers=True))


def _plan_weapon_moves(
    session: Session, refs: list[tuple[int, WeaponRef]], plan: Plan, errors: LineErrors
) -> None:
    resolved = resolve_weapons(session, refs, errors)
    plan.unknown.update((line_no, unknown_weapon(ref)) for line_no, ref in refs)
    first_line: dict[uuid.UUID, int] = {}
    for line_no, row in resolved.items():
        if row.category != "weapon":
            errors.add(line_no, f"{row.item_type} is not a weapon type")
        elif row.id in first_line:
            errors.add(line_no, f"{row.label} is also on line {first_line[row.id]}")
        else:
            first_line[row.id] = line_no
            plan.moving_weapons.append((line_no, row))
            plan.lines.append(PostedLine(line_no, 1, weapon=row))


def _plan_lot_moves(
    session: Session, refs: list[tuple[int, LotRef]], plan: Plan, errors: LineErrors
) -> None:
    quantities = {line_no: ref.quantity for line_no, ref in refs}
    for line_no, lot in resolve_lots(session, refs, errors).items():
        quantity = quantities[line_no]
        plan.lot_debits[lot.id] += quantity
        plan.lot_credits[lot.id] += quantity
        plan.lot_labels.setdefault(lot.id, (line_no, lot))
        plan.lines.append(PostedLine(line_no, quantity, lot=lot))


def plan_moves(session: Session, kind: Kind, occurred_at: datetime, lines: list[Line]) -> Plan:
    """Resolve and check lines that move registered weapons and lots (registrations are refused):
    422 naming every bad line, as for a posted movement."""
    rule = Rule(frozenset(), frozenset())
    return plan_lines(session, rule, MovementRequest(kind, occurred_at, lines))
