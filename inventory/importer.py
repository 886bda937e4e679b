"""Importing a legacy weapons register (a spreadsheet saved as CSV) as receipts.

The whole file is checked before anything is posted, and every problem is reported by row and
column; a file with any problem posts nothing. A clean file is posted in one transaction: one
receipt per depot, source document and date, from the party that stands for the legacy register,
each with its own audit record. The register is history recorded late by nature, so the import
widens the late-entry window to cover its oldest row rather than flag every receipt."""

from __future__ import annotations

import csv
import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .clock import utcnow
from .db.models import Holder, ItemType, Weapon
from .db.models.ledger import MARKING_STATUSES, ORIGINS
from .domain.movements import Kind, has_control_characters, is_future, normalise_serial
from .services import audit_log, ledger, reference
from .services.ledger import MovementRequest
from .services.lines import BATCH, WeaponRegistration
from .services.unit_of_work import Context, UnitOfWork, run_write

HEADER = (
    "serial",
    "manufacturer",
    "item_type",
    "depot",
    "year_of_manufacture",
    "country_of_manufacture",
    "marking_status",
    "origin",
    "document_ref",
    "received_at",
)
# Columns a register may leave out of its header altogether (each then defaults as if blank).
OPTIONAL = ("year_of_manufacture", "country_of_manufacture", "marking_status", "origin")
REQUIRED = tuple(name for name in HEADER if name not in OPTIONAL)
LEGACY_PARTY = "LEGACY-REGISTER"
Progress = Callable[[int], None]


@dataclass(frozen=True)
class RowError:
    """One problem: the file's row number (the header is row 1), the column, what is wrong."""

    row: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.column}: {self.message}"


@dataclass
class Register:
    """A checked register: its receipts, ready to post, or the errors that stop it."""

    rows: int = 0
    errors: list[RowError] = field(default_factory=list)
    receipts: dict[tuple[str, str, datetime], list[WeaponRegistration]] = field(
        default_factory=lambda: defaultdict(list)
    )

    @property
    def oldest(self) -> datetime | None:
        return min((key[2] for key in self.receipts), default=None)


@dataclass(frozen=True)
class ImportReport:
    rows: int
    receipts: int
    movement_ids: list[str]


def check(
    session: Session, path: Path, now: datetime, progress: Progress | None = None
) -> Register:
    """Read and check the whole register at `path` against the header and the books."""
    register = Register()
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [name for name in REQUIRED if name not in (reader.fieldnames or [])]
        if missing:
            register.errors.append(
                RowError(
                    1,
                    "header",
                    f"missing column(s) {', '.join(missing)}; required: {', '.join(REQUIRED)} "
                    f"(optional: {', '.join(OPTIONAL)})",
                )
            )
            return register
        parsed = _parse_rows(reader, now, register, progress)
    _check_books(session, parsed, register)
    return register


def _parse_rows(
    reader: Iterable[dict[str, str]], now: datetime, register: Register, progress: Progress | None
) -> list[tuple[int, dict[str, Any], bool]]:
    """Every row, parsed as far as it goes, with whether it parsed without a problem."""
    parsed: list[tuple[int, dict[str, Any], bool]] = []
    for number, raw in enumerate(reader, start=2):
        register.rows += 1
        row, errors = _parse_row(number, raw, now)
        register.errors += errors
        parsed.append((number, row, not errors))
        if progress is not None and register.rows % 1000 == 0:
            progress(1000)
    if progress is not None:
        progress(register.rows % 1000)
    return parsed


def _parse_row(
    number: int, raw: dict[str, str], now: datetime
) -> tuple[dict[str, Any], list[RowError]]:
    errors: list[RowError] = []
    value = {name: (raw.get(name) or "").strip() for name in HEADER}

    def fail(column: str, message: str) -> None:
        errors.append(RowError(number, column, message))

    for name in ("serial", "manufacturer", "document_ref"):
        if has_control_characters(value[name]):
            fail(name, "contains control or invisible characters")
    row: dict[str, Any] = {
        "serial": normalise_serial(value["serial"]) or None,
        "manufacturer": normalise_serial(value["manufacturer"]),
        "item_type": value["item_type"],
        "depot": value["depot"],
        "document_ref": value["document_ref"],
        "marking_status": value["marking_status"] or "intact",
        "origin": value["origin"] or None,
        "country_of_manufacture": value["country_of_manufacture"] or None,
        "year_of_manufacture": None,
    }
    for name in ("manufacturer", "item_type", "depot", "document_ref"):
        if not value[name]:
            fail(name, "is required")
    if row["marking_status"] not in MARKING_STATUSES:
        fail("marking_status", f"{value['marking_status']!r} is not one of {MARKING_STATUSES}")
    elif row["serial"] is None and row["marking_status"] != "obliterated":
        fail("serial", "is required unless marking_status is obliterated")
    if row["origin"] is not None and row["origin"] not in ORIGINS:
        fail("origin", f"{value['origin']!r} is not one of {ORIGINS}")
    if len(row["serial"] or "") > 100 or len(row["manufacturer"]) > 100:
        fail("serial" if len(row["serial"] or "") > 100 else "manufacturer", "longer than 100")
    if len(row["document_ref"]) > 200:
        fail("document_ref", "longer than 200 characters")
    if row["country_of_manufacture"] and len(row["country_of_manufacture"]) > 64:
        fail("country_of_manufacture", "longer than 64 characters")
    if value["year_of_manufacture"]:
        try:
            row["year_of_manufacture"] = int(value["year_of_manufacture"])
            if not 1800 <= row["year_of_manufacture"] <= 2100:
                fail("year_of_manufacture", "must be between 1800 and 2100")
        except ValueError:
            fail("year_of_manufacture", f"{value['year_of_manufacture']!r} is not a year")
    try:
        row["received_at"] = received_at(value["received_at"])
        if is_future(row["received_at"], now):
            fail("received_at", f"{value['received_at']} is in the future")
    except ValueError as error:
        fail("received_at", str(error))
    return row, errors


def received_at(text: str) -> datetime:
    """A date (taken as 00:00 UTC) or an ISO 8601 timestamp with a UTC offset."""
    if not text:
        raise ValueError("is required (YYYY-MM-DD or an ISO 8601 timestamp with offset)")
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0, tzinfo=UTC))
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not YYYY-MM-DD or an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return moment


def _check_books(
    session: Session, parsed: list[tuple[int, dict[str, Any], bool]], register: Register
) -> None:
    """Depots and item types must exist; no weapon may be registered twice (here or before).
    Only rows without any problem become receipt lines."""
    depots = set(session.scalars(select(Holder.code).where(Holder.kind == "depot")))
    types = {t.code: t for t in session.scalars(select(ItemType))}
    known = _registered(session, {row["serial"] for _, row, _ok in parsed if row["serial"]})
    first_row: dict[tuple[str, str, str], int] = {}
    for number, row, parsed_ok in parsed:
        bad = not parsed_ok
        if row["depot"] and row["depot"] not in depots:
            register.errors.append(RowError(number, "depot", f"no depot {row['depot']!r}"))
            bad = True
        item_type = types.get(row["item_type"])
        if row["item_type"] and (item_type is None or item_type.category != "weapon"):
            message = f"{row['item_type']!r} is not a weapon item type"
            register.errors.append(RowError(number, "item_type", message))
            bad = True
        if row["serial"] and not bad:
            identity = (row["manufacturer"], row["item_type"], row["serial"])
            label = f"{row['item_type']} {row['manufacturer']} {row['serial']}"
            if identity in known:
                message = f"weapon {label} is already registered"
                register.errors.append(RowError(number, "serial", message))
                bad = True
            elif identity in first_row:
                message = f"weapon {label} is also on row {first_row[identity]}"
                register.errors.append(RowError(number, "serial", message))
                bad = True
            else:
                first_row[identity] = number
        if not bad:
            key = (row["depot"], row["document_ref"], row["received_at"])
            register.receipts[key].append(
                WeaponRegistration(
                    manufacturer=row["manufacturer"],
                    item_type=row["item_type"],
                    serial=row["serial"],
                    marking_status=row["marking_status"],
                    origin=row["origin"],
                    year_of_manufacture=row["year_of_manufacture"],
                    country_of_manufacture=row["country_of_manufacture"],
                )
            )


def _registered(session: Session, serials: set[str]) -> set[tuple[str, str, str]]:
    ordered = sorted(serials)
    found: set[tuple[str, str, str]] = set()
    for start in range(0, len(ordered), BATCH):
        rows = session.execute(
            select(Weapon.manufacturer, ItemType.code, Weapon.serial)
            .join(ItemType, Weapon.item_type_id == ItemType.id)
            .where(Weapon.serial.in_(ordered[start : start + BATCH]))
        )
        found.update((maker, code, serial) for maker, code, serial in rows)
    return found


def post(
    session: Session,
    context: Context,
    register: Register,
    source_name: str,
    party: str = LEGACY_PARTY,
    progress: Progress | None = None,
) -> ImportReport:
    """Post a checked register in one transaction; nothing is posted if any receipt fails."""
    if register.errors:
        raise ValueError("a register with errors is not posted")
    if register.oldest is not None:
        window = context.settings.late_entry_window
        widened = max(window, utcnow() - register.oldest + timedelta(days=1))
        context = dataclasses.replace(
            context, settings=dataclasses.replace(context.settings, late_entry_window=widened)
        )
    if reference.find_holder(session, "party", party) is None:
        run_write(
            session,
            context,
            lambda uow: reference.create_party(
                uow, party, "Legacy weapons register (imported)", "n/a", "other"
            ),
            lambda _party, _uow: None,
        )
    session.rollback()
    note = f"imported from legacy register {source_name}"
    requests = [
        MovementRequest(
            kind=Kind.RECEIPT,
            occurred_at=moment,
            lines=list(lines),
            source=f"party:{party}",
            destination=f"depot:{depot}",
            document_ref=document,
            note=note,
        )
        for (depot, document, moment), lines in sorted(
            register.receipts.items(), key=lambda item: (item[0][2], item[0][0], item[0][1])
        )
    ]

    def post_all(uow: UnitOfWork) -> list[str]:
        ids: list[str] = []
        for number, request in enumerate(requests):
            posted = ledger.post_movement(uow, request)
            ids.append(str(posted.movement.id))
            if number < len(requests) - 1:
                _seal(uow)  # each receipt keeps its own audit record; run_write seals the last
            if progress is not None:
                progress(len(request.lines))
        return ids

    ids = run_write(session, context, post_all, lambda result, _uow: result).body
    return ImportReport(register.rows, len(requests), ids)


def _seal(uow: UnitOfWork) -> None:
    """Append the audit record of the movement just posted, so the next can record its own."""
    entry = uow.audit_entry
    assert entry is not None
    uow.session.flush()
    audit_log.append(
        uow.session,
        actor=uow.actor,
        request_id=uow.context.request_id,
        now=uow.now,
        action=entry.action,
        subject=entry.subject,
        changes={**entry.changes, **uow.consequences},
    )
    uow.audit_entry, uow.consequences = None, {}
