"""End-use verifications: the serial checks of weapons delivered to an outside party, the first
`end_use_first_check` after delivery and then every `end_use_interval`. Recording one check's
result schedules the next, due `end_use_interval` after the check was made.

A result must account for every weapon the transfer delivered, as seen or not seen (a 422 names
those left out): a check that skips weapons would otherwise read as a clean one. Every weapon
not seen opens `end_use_missing` (one open per weapon and transfer, however many checks miss it).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Select, insert, select
from sqlalchemy.orm import Session

from ..db.models import Discrepancy, EndUseVerification, Movement, Transfer, VerificationResult
from ..domain.discrepancies import DiscrepancyKind
from ..domain.movements import is_future
from ..domain.policy import Action
from ..domain.transfers import match_weapons
from . import accountability, discrepancies
from .discrepancies import Finding
from .errors import Conflict, Invalid, NotFound
from .ledger import movement_lines
from .lines import LineErrors, WeaponRef, WeaponRow
from .unit_of_work import UnitOfWork

STATUSES = ("due", "overdue", "done")
SHOWN_MISSING = 20  # how many unaccounted serials a 422 names before "and N more"


@dataclass
class VerificationView:
    verification: EndUseVerification
    transfer: Transfer
    now: datetime

    @property
    def status(self) -> str:
        return status_of(self.verification, self.now)

    @property
    def overdue_by_seconds(self) -> int | None:
        if self.status != "overdue":
            return None
        return int((self.now - self.verification.due_at).total_seconds())


def status_of(verification: EndUseVerification, now: datetime) -> str:
    if verification.done_at is not None:
        return "done"
    return "overdue" if verification.due_at < now else "due"


def verifications_query(
    session: Session, *, status: str | None = None, now: datetime
) -> Select[EndUseVerification]:
    """Verifications by status at `now`: due (pending, not yet late), overdue (pending, past
    its due date) or done."""
    stmt = select(EndUseVerification)
    pending = EndUseVerification.done_at.is_(None)
    if status == "done":
        stmt = stmt.where(EndUseVerification.done_at.is_not(None))
    elif status == "overdue":
        stmt = stmt.where(pending, EndUseVerification.due_at < now)
    elif status == "due":
        stmt = stmt.where(pending, EndUseVerification.due_at >= now)
    return stmt


def views_of(
    session: Session, verifications: list[EndUseVerification], now: datetime
) -> list[VerificationView]:
    """Each verification with its transfer, read in one query."""
    ids = {v.transfer_id for v in verifications}
    by_id = {t.id: t for t in session.scalars(select(Transfer).where(Transfer.id.in_(ids)))}
    return [VerificationView(v, by_id[v.transfer_id], now) for v in verifications]


def get_verification(
    session: Session, verification_id: uuid.UUID, now: datetime
) -> VerificationView:
    verification = session.get(EndUseVerification, verification_id)
    if verification is None:
        raise NotFound(f"no end-use verification {verification_id}")
    return views_of(session, [verification], now)[0]


@dataclass(frozen=True)
class CheckResult:
    checked_at: datetime
    seen: list[WeaponRef]
    not_seen: list[WeaponRef]
    note: str | None = None


@dataclass
class RecordedCheck:
    view: VerificationView
    seen: int
    not_seen: int
    discrepancies: list[uuid.UUID] = field(default_factory=list)
    next: EndUseVerification | None = None


def record_result(
    uow: UnitOfWork, verification_id: uuid.UUID, result: CheckResult
) -> RecordedCheck:
    """Record which delivered weapons were seen; open `end_use_missing` for each one not seen;
    schedule the next check. A verification takes one result (a second is 409)."""
    accountability.require(uow, Action.VERIFICATION_RESULT)
    session = uow.session
    verification = session.scalar(
        select(EndUseVerification).where(EndUseVerification.id == verification_id).with_for_update()
    )
    if verification is None:
        raise NotFound(f"no end-use verification {verification_id}")
    transfer = session.get_one(Transfer, verification.transfer_id)
    if verification.done_at is not None:
        raise Conflict(
            f"end-use verification {verification.number} of transfer {transfer.id} was "
            f"already recorded (checked at {verification.done_at.isoformat()} by "
            f"{verification.recorded_by})"
        )
    _check_time(uow, transfer, result.checked_at)
    delivered = _delivered(session, transfer)
    seen, not_seen = _account_for(delivered, result)
    session.execute(
        insert(VerificationResult),
        [
            {"verification_id": verification.id, "weapon_id": weapon.id, "seen": flag}
            for flag, weapons in ((True, seen), (False, not_seen))
            for weapon in weapons
        ],
    )
    verification.done_at = result.checked_at
    verification.recorded_by = uow.actor.name
    verification.note = result.note
    party = transfer.to_holder
    findings = [
        Finding(
            DiscrepancyKind.END_USE_MISSING,
            f"transfer:{transfer.id}/weapon:{weapon.id}",
            f"{weapon.label}, delivered to {party.ref} by transfer "
            f"{transfer.document_ref or transfer.id} (end user {transfer.end_user_ref}), "
            f"was not seen at end-use verification {verification.number} on "
            f"{result.checked_at.date().isoformat()}",
            depot=transfer.from_holder,
            holder=party,
            weapon_id=weapon.id,
            transfer_id=transfer.id,
            verification_id=verification.id,
        )
        for weapon in not_seen
    ]
    opened = discrepancies.open_findings(uow, _not_yet_open(session, findings))
    following = EndUseVerification(
        id=uuid.uuid4(),
        transfer_id=transfer.id,
        number=verification.number + 1,
        due_at=result.checked_at + uow.settings.end_use_interval,
    )
    session.add(following)
    uow.record(
        "verification.result",
        f"verification:{verification.id}",
        {
            "verification": verification.id,
            "transfer": transfer.id,
            "number": verification.number,
            "checked_at": result.checked_at,
            "note": result.note,
            "seen": [w.id for w in seen],
            "not_seen": [w.id for w in not_seen],
            "next": [following.id, following.number, following.due_at],
        },
    )
    return RecordedCheck(
        VerificationView(verification, transfer, uow.now),
        len(seen),
        len(not_seen),
        [d.id for d in opened],
        following,
    )


def _not_yet_open(session: Session, findings: list[Finding]) -> list[Finding]:
    """Findings without an unresolved discrepancy already (open_findings needs at least one new
    finding when called: with only already-open ones it inserts an empty batch of events)."""
    keys = [f.subject_key for f in findings]
    if not keys:
        return []
    already = set(
        session.scalars(
            select(Discrepancy.subject_key).where(
                Discrepancy.kind == str(DiscrepancyKind.END_USE_MISSING),
                Discrepancy.status != "resolved",
                Discrepancy.subject_key.in_(keys),
            )
        )
    )
    return [f for f in findings if f.subject_key not in already]


def _check_time(uow: UnitOfWork, transfer: Transfer, checked_at: datetime) -> None:
    if is_future(checked_at, uow.now):
        raise Invalid(
            f"checked_at {checked_at.isoformat()} is in the future (server time "
            f"{uow.now.isoformat()})",
            field="checked_at",
        )
    assert transfer.received_at is not None
    if checked_at < transfer.received_at:
        raise Invalid(
            f"checked_at {checked_at.isoformat()} is before transfer {transfer.id} was "
            f"delivered ({transfer.received_at.isoformat()})",
            field="checked_at",
        )


def _delivered(session: Session, transfer: Transfer) -> list[WeaponRow]:
    """The weapons the transfer's receipt moved to the party."""
    seq = session.scalar(select(Movement.seq).where(Movement.id == transfer.receipt_movement_id))
    if seq is None:
        return []
    return [line.weapon for line in movement_lines(session, seq) if line.weapon is not None]


def _account_for(
    delivered: list[WeaponRow], result: CheckResult
) -> tuple[list[WeaponRow], list[WeaponRow]]:
    """Match `seen` and `not_seen` to the delivered weapons; 422 for a weapon that was not
    delivered, named twice, or left out."""
    rows = {row.id: row for row in delivered}
    outcome: dict[str, list[WeaponRow]] = {}
    first: dict[uuid.UUID, str] = {}
    errors: dict[str, list[str]] = {}
    for name, refs in (("seen", result.seen), ("not_seen", result.not_seen)):
        lines = LineErrors()
        match = match_weapons(rows.values(), list(enumerate(refs)))
        for line_no, message in match.errors.items():
            lines.add(line_no, message)
        for line_no in match.unmatched:
            ref = refs[line_no]
            lines.add(line_no, f"{ref.serial or ref.weapon_id} was not delivered by this transfer")
        for line_no, row in match.matched.items():
            if row.id in first:
                lines.add(line_no, f"serial {row.serial} is also listed in {first[row.id]}")
            first[row.id] = f"{name}[{line_no}]"
        errors.update({f"{name}{key.removeprefix('lines')}": v for key, v in lines.errors.items()})
        outcome[name] = [rows[row.id] for row in match.matched.values()]
    left_out = [row for row in delivered if row.id not in first]
    if left_out:
        serials = ", ".join(row.serial for row in left_out[:SHOWN_MISSING])
        more = len(left_out) - SHOWN_MISSING
        errors["not_seen"] = [
            f"{len(left_out)} delivered weapons are neither seen nor not_seen: {serials}"
            + (f" and {more} more" if more > 0 else "")
            + "; list each delivered weapon in one of them"
        ]
    if errors:
        first_field, messages = next(iter(errors.items()))
        raise Invalid(f"{first_field}: {messages[0]}", errors=errors)
    return outcome["seen"], outcome["not_seen"]
