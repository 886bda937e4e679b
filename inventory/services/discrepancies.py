"""Opening discrepancies and moving them through their lifecycle. Opening is idempotent: at most
one unresolved discrepancy per kind and subject, so sweeps and retries never open duplicates."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, Table, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ..db.bulk import among, insert_rows
from ..db.models import Discrepancy, DiscrepancyEvent, Holder
from ..domain import policy
from ..domain.actors import Actor
from ..domain.discrepancies import DEFAULT_SEVERITY, TRANSITIONS, DiscrepancyKind
from ..domain.policy import Action
from . import accountability, outbox
from .errors import Conflict, Forbidden, Invalid, NotFound
from .unit_of_work import UnitOfWork

_DISCREPANCIES: Table = Discrepancy.__table__  # type: ignore[assignment]
_EVENTS: Table = DiscrepancyEvent.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class Finding:
    """A discrepancy to open: its kind, what it is about, where, and a sentence for humans."""

    kind: DiscrepancyKind
    subject_key: str
    summary: str
    depot: Holder | None = None
    holder: Holder | None = None
    severity: str | None = None
    weapon_id: uuid.UUID | None = None
    lot_id: uuid.UUID | None = None
    quantity: int | None = None
    transfer_id: uuid.UUID | None = None
    stocktake_id: uuid.UUID | None = None
    verification_id: uuid.UUID | None = None
    movement_id: uuid.UUID | None = None


def open_findings(uow: UnitOfWork, findings: list[Finding]) -> list[Discrepancy]:
    """Open a discrepancy for each finding not already open; return the ones opened.

    Set-based: one query for what is already open, one bulk insert each for the discrepancies,
    their "opened" events and (at commit, see `run_write`) their outbox events."""
    if not findings:
        return []
    session = uow.session
    already = _unresolved_keys(session, findings)
    fresh: dict[tuple[str, str], Finding] = {}
    for finding in findings:
        key = (str(finding.kind), finding.subject_key)
        if key not in already and key not in fresh:
            fresh[key] = finding
    if not fresh:  # all already open; an empty bulk insert would insert one row of NULLs
        return []
    rows: list[dict[str, Any]] = [
        {
            "id": uuid.uuid4(),
            "kind": str(finding.kind),
            "severity": finding.severity or DEFAULT_SEVERITY[finding.kind],
            "status": "open",
            "subject_key": finding.subject_key,
            "depot_id": finding.depot.id if finding.depot else None,
            "holder_id": finding.holder.id if finding.holder else None,
            "weapon_id": finding.weapon_id,
            "lot_id": finding.lot_id,
            "quantity": finding.quantity,
            "transfer_id": finding.transfer_id,
            "stocktake_id": finding.stocktake_id,
            "verification_id": finding.verification_id,
            "movement_id": finding.movement_id,
            "detected_at": uow.now,
            "summary": finding.summary,
            "resolved_at": None,
        }
        for finding in fresh.values()
    ]
    # Core rows (COPY on PostgreSQL), not ORM objects: a stocktake of a depot nobody could count
    # opens one discrepancy per weapon, tens of thousands.
    insert_rows(session, _DISCREPANCIES, rows)
    seqs = _seqs_of(session, [row["id"] for row in rows])
    opened: list[Discrepancy] = []
    for row, finding in zip(rows, fresh.values(), strict=True):
        discrepancy = Discrepancy(seq=seqs[row["id"]], **row)  # as stored, for the callers
        discrepancy.depot, discrepancy.holder = finding.depot, finding.holder
        opened.append(discrepancy)
    insert_rows(
        session,
        _EVENTS,
        [
            {
                "discrepancy_seq": d.seq,
                "at": uow.now,
                "actor": uow.actor.name,
                "action": "opened",
                "note": d.summary,
                "movement_id": None,
            }
            for d in opened
        ],
    )
    for discrepancy in opened:
        outbox.publish(
            uow,
            "discrepancy.opened",
            describe(discrepancy),
            depot=discrepancy.depot.code if discrepancy.depot else None,
            kind=discrepancy.kind,
            severity=discrepancy.severity,
        )
    uow.note_consequence("discrepancies_opened", [[d.id, d.kind, d.subject_key] for d in opened])
    return opened


def _seqs_of(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    seqs: dict[uuid.UUID, int] = {}
    for start in range(0, len(ids), 5_000):
        rows = session.execute(
            select(Discrepancy.id, Discrepancy.seq).where(
                among(session, Discrepancy.id, ids[start : start + 5_000])
            )
        )
        seqs.update((id_, seq) for id_, seq in rows)
    return seqs


def _unresolved_keys(session: Session, findings: list[Finding]) -> set[tuple[str, str]]:
    kinds = sorted({str(f.kind) for f in findings})
    keys = sorted({f.subject_key for f in findings})
    found: set[tuple[str, str]] = set()
    for start in range(0, len(keys), 5_000):
        rows = session.execute(
            select(Discrepancy.kind, Discrepancy.subject_key).where(
                Discrepancy.status != "resolved",
                Discrepancy.kind.in_(kinds),
                Discrepancy.subject_key.in_(keys[start : start + 5_000]),
            )
        )
        found.update((kind, key) for kind, key in rows)
    return found


def describe(discrepancy: Discrepancy) -> dict[str, Any]:
    """The discrepancy as monitors receive it in `discrepancy.*` events."""
    return {
        "id": discrepancy.id,
        "kind": discrepancy.kind,
        "severity": discrepancy.severity,
        "status": discrepancy.status,
        "depot": discrepancy.depot.code if discrepancy.depot else None,
        "holder": discrepancy.holder.ref if discrepancy.holder else None,
        "subject": subject_of(discrepancy),
        "detected_at": discrepancy.detected_at,
        "summary": discrepancy.summary,
    }


def subject_of(discrepancy: Discrepancy) -> dict[str, Any]:
    fields = (
        "weapon_id",
        "lot_id",
        "quantity",
        "transfer_id",
        "stocktake_id",
        "verification_id",
        "movement_id",
    )
    return {name: value for name in fields if (value := getattr(discrepancy, name)) is not None}


def discrepancies_query(
    session: Session,
    actor: Actor,
    *,
    status: str | None = None,
    kind: str | None = None,
    depot: str | None = None,
    severity: str | None = None,
) -> Select[Discrepancy]:
    """Discrepancies matching the filters that `actor` may read (clerks: their depots only)."""
    stmt = select(Discrepancy)
    if status:
        stmt = stmt.where(Discrepancy.status == status)
    if kind:
        stmt = stmt.where(Discrepancy.kind == kind)
    if severity:
        stmt = stmt.where(Discrepancy.severity == severity)
    if depot:
        if not policy.may_read(actor, depot):
            raise Forbidden(f"depot {depot} is not one of your depots")
        stmt = stmt.where(Discrepancy.depot_id.in_(_depot_ids([depot])))
    if (readable := policy.readable_depots(actor)) is not None:
        stmt = stmt.where(Discrepancy.depot_id.in_(_depot_ids(sorted(readable))))
    return stmt


def _depot_ids(codes: list[str]) -> Select[int]:
    return select(Holder.id).where(Holder.kind == "depot", Holder.code.in_(codes))


def get_visible(session: Session, actor: Actor, discrepancy_id: uuid.UUID) -> Discrepancy:
    """The discrepancy, or 404 if there is none or it is outside a clerk's depots."""
    found = session.scalar(
        discrepancies_query(session, actor).where(Discrepancy.id == discrepancy_id)
    )
    if found is None:
        raise NotFound(f"no discrepancy {discrepancy_id}")
    return found


def get(session: Session, discrepancy_id: uuid.UUID) -> Discrepancy:
    discrepancy = session.scalar(select(Discrepancy).where(Discrepancy.id == discrepancy_id))
    if discrepancy is None:
        raise NotFound(f"no discrepancy {discrepancy_id}")
    return discrepancy


def events_of(session: Session, discrepancy: Discrepancy) -> list[DiscrepancyEvent]:
    return list(
        session.scalars(
            select(DiscrepancyEvent)
            .where(DiscrepancyEvent.discrepancy_seq == discrepancy.seq)
            .order_by(DiscrepancyEvent.id)
        )
    )


def add_event(
    uow: UnitOfWork,
    discrepancy_id: uuid.UUID,
    action: str,
    note: str | None,
    movement_id: uuid.UUID | None = None,
) -> Discrepancy:
    """Note, investigate or resolve, as the policy allows (clerks: notes, in their depots; a
    discrepancy outside a clerk's depots is 404 to them); resolving needs a note saying why."""
    discrepancy = get(uow.session, discrepancy_id)
    if action not in TRANSITIONS:
        raise Invalid(f"unknown action {action!r}", field="action")
    accountability.require(
        uow,
        Action(f"discrepancy.{action}"),
        depot=discrepancy.depot.code if discrepancy.depot else None,
        hide=f"no discrepancy {discrepancy_id}",
    )
    allowed_from, _ = TRANSITIONS[action]
    if discrepancy.status not in allowed_from:
        raise Conflict(f"discrepancy {discrepancy.id} is {discrepancy.status}; cannot {action}")
    if action == "resolve" and not (note and note.strip()):
        raise Invalid(
            "resolving a discrepancy needs a note saying how it was settled", field="note"
        )
    _append_event(uow, discrepancy, action, note, movement_id)
    uow.record(
        f"discrepancy.{action}",
        f"discrepancy:{discrepancy.id}",
        {"action": action, "note": note, "movement": movement_id, "status": discrepancy.status},
    )
    return discrepancy


def advance_for_movement(
    uow: UnitOfWork, seqs: list[int], note: str, movement_id: uuid.UUID
) -> list[Discrepancy]:
    """Link a movement to the open discrepancies `seqs` (a recovery to the losses it settles):
    open ones go to investigating, the rest get a note. A person resolves them."""
    found = list(uow.session.scalars(select(Discrepancy).where(Discrepancy.seq.in_(seqs))).unique())
    for discrepancy in sorted(found, key=lambda d: d.seq):
        action = "investigate" if discrepancy.status == "open" else "note"
        _append_event(uow, discrepancy, action, note, movement_id)
    return found


def _append_event(
    uow: UnitOfWork,
    discrepancy: Discrepancy,
    action: str,
    note: str | None,
    movement_id: uuid.UUID | None,
) -> None:
    """Append the event, then (if the action leads somewhere) change the status. The event goes
    in first: the database refuses a status change that its latest event does not explain."""
    session = uow.session
    session.execute(
        insert(_EVENTS).values(
            discrepancy_seq=discrepancy.seq,
            at=uow.now,
            actor=uow.actor.name,
            action=action,
            note=note,
            movement_id=movement_id,
        )
    )
    _, leads_to = TRANSITIONS[action]
    if leads_to is None:
        return
    resolved_at = uow.now if leads_to == "resolved" else None
    session.execute(
        update(_DISCREPANCIES)
        .where(_DISCREPANCIES.c.seq == discrepancy.seq)
        .values(status=leads_to, resolved_at=resolved_at)
    )
    set_committed_value(discrepancy, "status", leads_to)
    set_committed_value(discrepancy, "resolved_at", resolved_at)
    outbox.publish(
        uow,
        "discrepancy.updated",
        describe(discrepancy),
        depot=discrepancy.depot.code if discrepancy.depot else None,
        kind=discrepancy.kind,
        severity=discrepancy.severity,
    )
