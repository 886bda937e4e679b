"""Posting movements to the custody ledger.

One movement is one transaction: the journal entry and its lines, new registrations, and the
current-holdings projection move together. Rows are locked in a fixed order (weapons by id, then
lot balances by lot and holder) after any missing zero balance rows are inserted, so concurrent
movements either queue or deadlock-and-retry, and never both take the same weapon.
"""

from __future__ import annotations

import functools
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Insert,
    Select,
    Table,
    Update,
    bindparam,
    insert,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from ..db.bulk import among_param, insert_rows
from ..db.engine import reuse_plans, rows_of
from ..db.models import (
    Discrepancy,
    Holder,
    ItemType,
    Lot,
    LotHolding,
    Movement,
    MovementLine,
    Weapon,
    WeaponHolding,
)
from ..db.types import UTCDateTime
from ..domain import policy
from ..domain.actors import Actor
from ..domain.discrepancies import DiscrepancyKind
from ..domain.movements import (
    IMPLIED_DESTINATION,
    RULES,
    TRANSFER_KINDS,
    Kind,
    Rule,
    is_future,
    is_late,
)
from ..domain.policy import Action, Answer, Decision, Outcome
from . import accountability, discrepancies, holder_counts, holders, outbox
from .accountability import Crossing, LostFrom
from .discrepancies import Finding
from .errors import Conflict, Invalid
from .lines import (
    BATCH,
    LineErrors,
    LotRow,
    WeaponRow,
)
from .posting_plan import MovementRequest, Plan, PostedLine, plan_lines
from .unit_of_work import UnitOfWork

_LOT_HOLDINGS: Table = LotHolding.__table__  # type: ignore[assignment]
_WEAPON_HOLDINGS: Table = WeaponHolding.__table__  # type: ignore[assignment]
# Core tables for the bulk inserts: one multi-row INSERT per batch, without the ORM's bookkeeping.
_WEAPONS: Table = Weapon.__table__  # type: ignore[assignment]
_LOTS: Table = Lot.__table__  # type: ignore[assignment]
_LINES: Table = MovementLine.__table__  # type: ignore[assignment]
_MOVEMENTS: Table = Movement.__table__  # type: ignore[assignment]


@dataclass
class PostedMovement:
    movement: Movement
    lines: list[PostedLine]
    audit_seq: int | None = None


def post_movement(uow: UnitOfWork, request: MovementRequest) -> PostedMovement:
    """Post a receipt, issue, return, loss, recovery, expenditure, destruction or reversal."""
    if request.kind in TRANSFER_KINDS:
        raise Invalid(f"{request.kind} is posted through /api/v1/transfers", field="kind")
    if request.kind is Kind.REVERSAL:
        return _post_reversal(uow, request)
    rule = RULES[request.kind]
    session = uow.session
    if request.source is None:
        raise Invalid(f"a {request.kind} needs `from`", field="from")
    reuse_plans(session)
    destination_ref = request.destination or IMPLIED_DESTINATION.get(request.kind)
    named = {"from": request.source} | ({"to": destination_ref} if destination_ref else {})
    found = holders.resolve_many(session, named)
    if destination_ref is None:
        raise Invalid(f"a {request.kind} needs `to`", field="to")
    source, destination = found["from"], found["to"]
    _check_holders(rule, request.kind, source, destination)
    _check_required(rule, request)
    decision = accountability.require(
        uow,
        Action(str(request.kind)),
        source=accountability.answer_of(source, destination),
        destination=accountability.answer_of(destination, source),
    )
    _check_times(uow, request)
    plan = plan_lines(session, rule, request)
    crossed, losses = _cross_depot(uow, request, source, destination, plan, decision)
    posted = _record(uow, request, source, destination, plan, crossed=crossed)
    if losses:
        _link_recovered_losses(uow, posted.movement, destination, losses)
    return posted


def _check_holders(rule: Rule, kind: Kind, source: Holder, destination: Holder) -> None:
    if source.kind not in rule.sources:
        allowed = " or ".join(sorted(rule.sources))
        raise Invalid(f"a {kind} moves stock from a {allowed}, not {source.ref}", field="from")
    if destination.kind not in rule.destinations:
        allowed = " or ".join(sorted(rule.destinations))
        raise Invalid(f"a {kind} moves stock to a {allowed}, not {destination.ref}", field="to")


def _check_required(rule: Rule, request: MovementRequest) -> None:
    errors = {
        name: [f"a {request.kind} requires {name}"]
        for name in rule.requires
        if getattr(request, name) in (None, "")
    }
    if request.kind is Kind.ISSUE and request.due_back_at is not None:
        if request.due_back_at <= request.occurred_at:
            errors["due_back_at"] = ["due_back_at must be after occurred_at"]
    if errors:
        raise Invalid("; ".join(m[0] for m in errors.values()), errors=errors)


def _check_times(uow: UnitOfWork, request: MovementRequest) -> None:
    if is_future(request.occurred_at, uow.now):
        raise Invalid(
            f"occurred_at {request.occurred_at.isoformat()} is in the future "
            f"(server time {uow.now.isoformat()})",
            field="occurred_at",
        )


def _record(
    uow: UnitOfWork,
    request: MovementRequest,
    source: Holder,
    destination: Holder,
    plan: Plan,
    *,
    reverses: uuid.UUID | None = None,
    transfer_id: uuid.UUID | None = None,
    audit: bool = True,
    crossed: list[Crossing] | None = None,
) -> PostedMovement:
    session = uow.session
    # Lock (and check) what moves before the movement takes its seq: a movement that waited for
    # another's locks then gets the later seq, so seq order is the order the movements took
    # effect on every weapon and lot, which histories, `as_of` and `ledger rebuild` replay.
    moving_ids = lock_weapons(session, plan.moving_weapons, source, uow.actor, plan.unknown)
    lot_deltas = lock_lots(session, plan, source, destination, uow.actor)
    columns: dict[str, Any] = {
        "id": uuid.uuid4(),
        "kind": str(request.kind),
        "from_holder_id": source.id,
        "to_holder_id": destination.id,
        "occurred_at": request.occurred_at,
        "recorded_at": uow.now,
        "actor": uow.actor.name,
        "document_ref": request.document_ref,
        "due_back_at": request.due_back_at,
        "case_ref": request.case_ref,
        "reason": request.reason,
        "certificate_ref": request.certificate_ref,
        "note": request.note,
        "reverses": reverses,
        "transfer_id": transfer_id,
        "late_entry": is_late(request.occurred_at, uow.now, uow.settings.late_entry_window),
    }
    leaving = None
    if session.connection().dialect.name == "postgresql" and _moves_registered_weapons_only(plan):
        seq = _post_weapon_moves(session, columns, plan, moving_ids, source, destination)
    else:
        leaving = holder_counts.leaving(session, moving_ids, source)  # read before they move
        seq = _post_lines(session, columns, plan, moving_ids, destination, lot_deltas)
    movement = Movement(seq=seq, **columns)  # as posted, for the response and the audit record
    movement.from_holder, movement.to_holder = source, destination
    findings = _findings(movement, request, source, plan)
    findings += [_crossing_finding(movement, source, destination, c) for c in crossed or []]
    discrepancies.open_findings(uow, findings)
    if leaving is not None:
        # Last before the audit append: the counters' row locks are held only to the commit.
        holder_counts.record_movement(session, leaving, destination, len(plan.new_weapons), uow.now)
    if audit:
        uow.record(
            f"movement.{request.kind}",
            f"movement:{movement.id}",
            _audit_changes(movement, source, destination, plan),
        )
    return PostedMovement(movement, plan.lines)


def _moves_registered_weapons_only(plan: Plan) -> bool:
    return not plan.new_weapons and all(
        line.weapon is not None and not line.registers for line in plan.lines
    )


# The everyday issue or return, on PostgreSQL: the movement, its weapons' new holder, its lines
# and the report's counters in one statement, one round trip instead of six. The counters move as
# holder_counts.record_movement moves them (see there; that is the way for every other movement
# and on SQLite): `leaving` reads, from the statement's snapshot (before `moved`), what each
# weapon counts under where it is now. Counter rows are written in key order, as there.
_POST_WEAPON_MOVES = text(
    """
WITH leaving AS (
    SELECT m.from_holder_id AS lost_from,
        CASE WHEN v.verified_at > m.recorded_at THEN v.verified_at ELSE m.recorded_at END
            AS fresh_since
    FROM weapon_holdings h
    JOIN movements m ON m.seq = h.movement_seq
    LEFT JOIN weapon_verifications v ON v.weapon_id = h.weapon_id
    WHERE h.weapon_id = ANY(CAST(:weapon_ids AS uuid[]))
), count_changes AS (
    SELECT holder_id, lost, sum(weapons) AS weapons FROM (
        SELECT CASE WHEN :source_kind = 'lost' THEN lost_from ELSE :from_holder_id END
                AS holder_id,
            :source_kind = 'lost' AS lost, -1 AS weapons
        FROM leaving
        UNION ALL
        SELECT CASE WHEN :destination_kind = 'lost' THEN :from_holder_id ELSE :to_holder_id END,
            :destination_kind = 'lost', count(*)
        FROM leaving
    ) AS change
    GROUP BY holder_id, lost HAVING sum(weapons) <> 0
), counted AS (
    INSERT INTO holder_weapon_counts (holder_id, lost, weapons)
    SELECT holder_id, lost, weapons FROM count_changes ORDER BY holder_id, lost
    ON CONFLICT (holder_id, lost)
        DO UPDATE SET weapons = holder_weapon_counts.weapons + excluded.weapons
), freshness_changes AS (
    SELECT holder_id, fresh_since, sum(weapons) AS weapons FROM (
        SELECT CAST(:from_holder_id AS bigint) AS holder_id, fresh_since, -1 AS weapons
        FROM leaving WHERE :source_kind = 'depot'
        UNION ALL
        SELECT :to_holder_id, :recorded_at, count(*)
        FROM leaving WHERE :destination_kind = 'depot'
    ) AS change
    GROUP BY holder_id, fresh_since HAVING sum(weapons) <> 0
), emptied AS (
    -- Only the source depot's rows can empty. Saying so lets the server read them by index
    -- whatever it estimates: joined to freshness_changes alone (200 rows by its guess, 1 for a
    -- 1,000-weapon issue), its custom plan scanned the whole table (24 of 107 ms).
    DELETE FROM in_store_freshness AS row USING freshness_changes AS change
    WHERE row.holder_id = CAST(:from_holder_id AS bigint)
        AND row.holder_id = change.holder_id AND row.fresh_since = change.fresh_since
        AND row.weapons + change.weapons = 0
    RETURNING row.holder_id, row.fresh_since
), freshened AS (
    INSERT INTO in_store_freshness (holder_id, fresh_since, weapons)
    SELECT holder_id, fresh_since, weapons FROM freshness_changes AS change
    WHERE NOT EXISTS (
        SELECT FROM emptied
        WHERE emptied.holder_id = change.holder_id AND emptied.fresh_since = change.fresh_since
    )
    ORDER BY holder_id, fresh_since
    ON CONFLICT (holder_id, fresh_since)
        DO UPDATE SET weapons = in_store_freshness.weapons + excluded.weapons
), movement AS (
    INSERT INTO movements (id, kind, from_holder_id, to_holder_id, occurred_at, recorded_at,
        actor, document_ref, due_back_at, case_ref, reason, certificate_ref, note, reverses,
        transfer_id, late_entry)
    VALUES (:id, :kind, :from_holder_id, :to_holder_id, :occurred_at, :recorded_at, :actor,
        :document_ref, :due_back_at, :case_ref, :reason, :certificate_ref, :note, :reverses,
        :transfer_id, :late_entry)
    RETURNING seq
), moved AS (
    UPDATE weapon_holdings SET holder_id = :to_holder_id, movement_seq = movement.seq
    FROM movement
    WHERE weapon_id = ANY(CAST(:weapon_ids AS uuid[]))
), lines AS (
    INSERT INTO movement_lines (movement_seq, line_no, weapon_id, quantity, registers)
    SELECT movement.seq, line.line_no, line.weapon_id, 1, false
    FROM movement,
        unnest(CAST(:line_nos AS integer[]), CAST(:line_weapons AS uuid[]))
            AS line (line_no, weapon_id)
)
SELECT seq FROM movement
"""
).bindparams(
    bindparam("occurred_at", type_=UTCDateTime()),
    bindparam("recorded_at", type_=UTCDateTime()),
    bindparam("due_back_at", type_=UTCDateTime()),
)


def _post_weapon_moves(
    session: Session,
    columns: dict[str, Any],
    plan: Plan,
    moving_ids: list[uuid.UUID],
    source: Holder,
    destination: Holder,
) -> int:
    """Write a movement of registered weapons alone, and count it (PostgreSQL); its seq.
    `lock_weapons` has locked `moving_ids`, held by `source`."""
    assert (columns["from_holder_id"], columns["to_holder_id"]) == (source.id, destination.id)
    parameters = {
        **columns,
        "source_kind": source.kind,
        "destination_kind": destination.kind,
        "weapon_ids": moving_ids,
        "line_nos": [line.line_no for line in plan.lines],
        "line_weapons": [line.weapon.id for line in plan.lines if line.weapon is not None],
    }
    ((seq,),) = rows_of(session, _POST_WEAPON_MOVES, parameters)
    return int(seq)


def _post_lines(
    session: Session,
    columns: dict[str, Any],
    plan: Plan,
    moving_ids: list[uuid.UUID],
    destination: Holder,
    lot_deltas: dict[tuple[uuid.UUID, int], int],
) -> int:
    """Write the movement, what it registers, moves and its lines, statement by statement; its
    seq."""
    # A Core INSERT built once: the ORM's unit of work cost more than the statement.
    seq: int = session.connection().execute(_INSERT_MOVEMENT, columns).scalar_one()
    if plan.new_weapons:
        insert_rows(session, _WEAPONS, [{**w, "registered_by": seq} for w in plan.new_weapons])
        insert_rows(
            session,
            _WEAPON_HOLDINGS,
            [
                {"weapon_id": w["id"], "holder_id": destination.id, "movement_seq": seq}
                for w in plan.new_weapons
            ],
        )
    move_weapons(session, moving_ids, destination, seq)
    if plan.new_lots:
        insert_rows(session, _LOTS, [{**lot, "registered_by": seq} for lot in plan.new_lots])
        insert_rows(
            session,
            _LOT_HOLDINGS,
            [
                {"lot_id": lot["id"], "holder_id": destination.id, "quantity": quantity}
                for lot in plan.new_lots
                if (quantity := plan.lot_credits[lot["id"]])
            ],
        )
    move_lots(session, lot_deltas)
    insert_rows(
        session,
        _LINES,
        [
            {
                "movement_seq": seq,
                "line_no": line.line_no,
                "quantity": line.quantity,
                "registers": line.registers,
                "weapon_id": line.weapon.id if line.weapon else None,
                "lot_id": line.lot.id if line.lot else None,
            }
            for line in plan.lines
        ],
    )
    return seq


def post_system_movement(
    uow: UnitOfWork,
    kind: Kind,
    source: Holder,
    destination: Holder,
    plan: Plan,
    *,
    occurred_at: datetime,
    transfer_id: uuid.UUID | None = None,
    document_ref: str | None = None,
    note: str | None = None,
) -> tuple[PostedMovement, dict[str, Any]]:
    """Post a movement a use case derives itself (a transfer's dispatch, receive or cancel) from
    a checked `plan`, with the same locking, 409s and findings as any movement. The caller writes
    the one audit record, so the movement's audit changes are returned for it to include."""
    request = MovementRequest(kind, occurred_at, [], document_ref=document_ref, note=note)
    posted = _record(uow, request, source, destination, plan, transfer_id=transfer_id, audit=False)
    return posted, _audit_changes(posted.movement, source, destination, plan)


def _cross_depot(
    uow: UnitOfWork,
    request: MovementRequest,
    source: Holder,
    destination: Holder,
    plan: Plan,
    decision: Decision,
) -> tuple[list[Crossing], dict[uuid.UUID, LostFrom]]:
    """What the movement takes out of other depots' books (see the policy): a return from another
    depot's unit, or a recovery of weapons other depots lost. Also the open losses a recovery
    settles, which need its case_ref."""
    crossed: list[Crossing] = []
    losses: dict[uuid.UUID, LostFrom] = {}
    if decision.outcome is Outcome.CROSS_DEPOT and decision.opens is not None:
        answering = holders.depot_holder_of(source)
        assert answering is not None
        crossed.append(Crossing(answering, decision.opens))
    elif request.kind is Kind.RECOVERY and source.kind == "lost":
        losses = accountability.losses_of(
            uow.session, [row.id for _, row in plan.moving_weapons], source
        )
        for code, _ in sorted(accountability.by_depot(losses).items()):
            lost_from = Answer("lost", code)
            verdict = accountability.require(
                uow,
                Action.RECOVERY,
                source=lost_from,
                destination=accountability.answer_of(destination),
            )
            if verdict.outcome is Outcome.CROSS_DEPOT and verdict.opens is not None:
                depot = next(lost.depot for lost in losses.values() if lost.depot.code == code)
                crossed.append(Crossing(depot, verdict.opens))
    errors = accountability.missing_references(crossed, request.document_ref, str(request.kind))
    opened = sorted(str(lost.loss_id) for lost in losses.values() if lost.loss_id)
    if opened and not (request.case_ref and request.case_ref.strip()):
        errors["case_ref"] = [
            f"this recovery settles open reported loss {', '.join(opened)}: give the "
            "case_ref of the police or investigation case"
        ]
    if errors:
        raise Invalid("; ".join(m[0] for m in errors.values()), errors=errors)
    if crossed:
        for crossing in crossed:
            if request.kind is Kind.RECOVERY:
                crossing.weapons = [
                    wid for wid, lost in losses.items() if lost.depot.id == crossing.depot.id
                ]
            else:
                crossing.weapons = [row.id for _, row in plan.moving_weapons]
                crossing.lots = [(lot_id, q) for lot_id, q in plan.lot_debits.items()]
    return crossed, {wid: lost for wid, lost in losses.items() if lost.loss_seq is not None}


def _crossing_finding(
    movement: Movement, source: Holder, destination: Holder, crossing: Crossing
) -> Finding:
    count = len(crossing.weapons) + sum(q for _, q in crossing.lots)
    what = (
        f"{len(crossing.weapons)} weapons"
        + (f" and {sum(q for _, q in crossing.lots)} rounds" if crossing.lots else "")
        if count
        else "stock"
    )
    verb = "returned" if crossing.opens is DiscrepancyKind.RETURNED_ELSEWHERE else "recovered"
    here = holders.depot_of(destination)
    return Finding(
        crossing.opens,
        f"movement:{movement.id}@depot:{crossing.depot.code}",
        f"{what} that depot {crossing.depot.code} answered for ({source.ref}) were {verb} to "
        f"depot {here} by {movement.kind} {movement.id} "
        f"(document {movement.document_ref}); depot {crossing.depot.code}'s books no longer "
        "hold them",
        depot=crossing.depot,
        holder=destination,
        movement_id=movement.id,
        weapon_id=crossing.weapons[0] if len(crossing.weapons) == 1 else None,
    )


def _link_recovered_losses(
    uow: UnitOfWork, movement: Movement, destination: Holder, losses: dict[uuid.UUID, LostFrom]
) -> None:
    """Each open loss a recovery settles gets an event naming the movement and goes to
    investigating (a person resolves it); monitors hear `weapon.recovered`."""
    note = (
        f"recovered into {destination.ref} by movement {movement.id} "
        f"(case {movement.case_ref}, document {movement.document_ref or 'none'})"
    )
    linked = discrepancies.advance_for_movement(
        uow, [lost.loss_seq for lost in losses.values() if lost.loss_seq], note, movement.id
    )
    outbox.publish(
        uow,
        "weapon.recovered",
        {
            "movement": movement.id,
            "to": destination.ref,
            "case_ref": movement.case_ref,
            "document_ref": movement.document_ref,
            "weapons": sorted(str(wid) for wid in losses),
            "losses": [str(d.id) for d in linked],
            "lost_from": sorted({lost.depot.code for lost in losses.values()}),
        },
        depot=holders.depot_of(destination),
    )
    uow.note_consequence("losses_investigating", [d.id for d in linked])


def _findings(
    movement: Movement, request: MovementRequest, source: Holder, plan: Plan
) -> list[Finding]:
    """Discrepancies a movement opens by itself: every reported loss, and a late entry."""
    findings: list[Finding] = []
    depot = holders.depot_holder_of(source)
    if request.kind is Kind.LOSS:
        for line in plan.lines:
            if line.weapon is not None:
                what, key = line.weapon.label, f"weapon:{line.weapon.id}"
            else:
                assert line.lot is not None
                what = f"{line.quantity} rounds of {line.lot.label}"
                key = f"lot:{line.lot.id}@movement:{movement.id}"
            findings.append(
                Finding(
                    DiscrepancyKind.REPORTED_LOSS,
                    key,
                    f"{what} reported lost from {source.ref} (case {request.case_ref})",
                    depot=depot,
                    holder=source,
                    movement_id=movement.id,
                    weapon_id=line.weapon.id if line.weapon else None,
                    lot_id=line.lot.id if line.lot else None,
                    quantity=None if line.weapon else line.quantity,
                )
            )
    if movement.late_entry:
        delay = movement.recorded_at - movement.occurred_at
        findings.append(
            Finding(
                DiscrepancyKind.LATE_ENTRY,
                f"movement:{movement.id}",
                f"{movement.kind} {movement.document_ref or movement.id} recorded "
                f"{delay.days} days {delay.seconds // 3600} hours after it occurred",
                depot=depot or holders.depot_holder_of(movement.to_holder),
                holder=source,
                movement_id=movement.id,
            )
        )
    return findings


def lock_weapons(
    session: Session,
    moving: list[tuple[int, WeaponRow]],
    source: Holder,
    actor: Actor | None = None,
    unknown: dict[int, str] | None = None,
) -> list[uuid.UUID]:
    """Lock the holdings of weapons that `source` must hold now, in id order (so concurrent
    movements never deadlock), and return their ids; 409 naming every one held elsewhere. A
    weapon held where `actor` may not read gets the 422 of an unknown weapon (its `unknown`
    message), so a refusal never says where out-of-scope stock is."""
    line_of = {row.id: (line_no, row) for line_no, row in moving}
    ids = sorted(line_of)
    held: dict[uuid.UUID, int] = {}
    statement = _lock_holdings(session.get_bind().dialect.name)
    for start in range(0, len(ids), BATCH):
        rows = rows_of(session, statement, {"ids": ids[start : start + BATCH]})
        held.update((weapon_id, holder_id) for weapon_id, holder_id in rows)
    elsewhere = {wid: hid for wid in ids if (hid := held[wid]) != source.id}
    if elsewhere:
        refs = _holder_refs(session, set(elsewhere.values()))
        conflicts, hidden = LineErrors(), LineErrors()
        for wid, hid in sorted(elsewhere.items(), key=lambda item: line_of[item[0]][0]):
            line_no, row = line_of[wid]
            ref, depot = refs[hid]
            if actor is not None and not policy.may_read(actor, depot):
                hidden.add(line_no, (unknown or {}).get(line_no) or f"no weapon {row.label}")
            else:
                conflicts.add(line_no, f"{row.label} is held by {ref}, not {source.ref}")
        hidden.raise_if_any(Invalid)
        conflicts.raise_if_any(Conflict)
    return ids


def move_weapons(session: Session, ids: list[uuid.UUID], destination: Holder, seq: int) -> None:
    """Give the weapons `lock_weapons` locked to `destination`, by movement `seq`."""
    connection = session.connection()
    statement = _move_holdings(connection.dialect.name)
    for start in range(0, len(ids), BATCH):
        connection.execute(
            statement,
            {"ids": ids[start : start + BATCH], "to_holder": destination.id, "by_seq": seq},
        )


# The statements every movement runs, built once (per dialect where `among_param` differs):
# building a statement cost more Python than executing it.
_INSERT_MOVEMENT: Insert = insert(_MOVEMENTS).returning(_MOVEMENTS.c.seq)


@functools.cache
def _lock_holdings(dialect: str) -> Select[Any]:
    holding = _WEAPON_HOLDINGS.c
    return (
        select(holding.weapon_id, holding.holder_id)
        .where(among_param(dialect, holding.weapon_id, "ids"))
        .order_by(holding.weapon_id)
        .with_for_update()
    )


@functools.cache
def _move_holdings(dialect: str) -> Update:
    holding = _WEAPON_HOLDINGS.c
    return (
        update(_WEAPON_HOLDINGS)
        .where(among_param(dialect, holding.weapon_id, "ids"))
        .values(holder_id=bindparam("to_holder"), movement_seq=bindparam("by_seq"))
    )


def lock_lots(
    session: Session, plan: Plan, source: Holder, destination: Holder, actor: Actor | None = None
) -> dict[tuple[uuid.UUID, int], int]:
    """Lock the balances of registered lots the plan debits and credits, in a fixed order, and
    return the change to each; 409 if any balance would go negative. (Lots the movement itself
    registers have no balances yet; `_record` gives them theirs.)"""
    registering = {lot["id"] for lot in plan.new_lots}
    deltas: dict[tuple[uuid.UUID, int], int] = defaultdict(int)
    for lot_id, quantity in plan.lot_debits.items():
        deltas[(lot_id, source.id)] -= quantity
    for lot_id, quantity in plan.lot_credits.items():
        if lot_id not in registering:
            deltas[(lot_id, destination.id)] += quantity
    if not deltas:
        return {}
    keys = sorted(deltas, key=lambda k: (str(k[0]), k[1]))
    dialect = session.get_bind().dialect.name
    upsert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_LOT_HOLDINGS)
    session.execute(
        upsert.on_conflict_do_nothing(),
        [{"lot_id": lot_id, "holder_id": holder_id, "quantity": 0} for lot_id, holder_id in keys],
    )
    balances = dict(
        ((lot_id, holder_id), quantity)
        for lot_id, holder_id, quantity in session.execute(
            select(_LOT_HOLDINGS.c.lot_id, _LOT_HOLDINGS.c.holder_id, _LOT_HOLDINGS.c.quantity)
            .where(tuple_(_LOT_HOLDINGS.c.lot_id, _LOT_HOLDINGS.c.holder_id).in_(keys))
            .order_by(_LOT_HOLDINGS.c.lot_id, _LOT_HOLDINGS.c.holder_id)
            .with_for_update()
        )
    )
    conflicts = LineErrors()
    # A clerk moving stock out of a holder they may not read learns only that it is not there.
    readable = actor is None or policy.may_read(actor, holders.depot_of(source))
    for (lot_id, holder_id), delta in deltas.items():
        if balances[(lot_id, holder_id)] + delta < 0:
            line_no, lot = plan.lot_labels[lot_id]
            conflicts.add(
                line_no,
                f"{source.ref} holds {balances[(lot_id, holder_id)]} rounds "
                f"of {lot.label}, not {-delta}"
                if readable
                else f"{source.ref} does not hold {-delta} rounds of {lot.label}",
            )
    conflicts.raise_if_any(Conflict)
    return {key: deltas[key] for key in keys if deltas[key]}


def move_lots(session: Session, deltas: dict[tuple[uuid.UUID, int], int]) -> None:
    """Apply the balance changes `lock_lots` checked."""
    if not deltas:
        return
    session.execute(
        update(_LOT_HOLDINGS)
        .where(
            _LOT_HOLDINGS.c.lot_id == bindparam("b_lot"),
            _LOT_HOLDINGS.c.holder_id == bindparam("b_holder"),
        )
        .values(quantity=_LOT_HOLDINGS.c.quantity + bindparam("b_delta")),
        [
            {"b_lot": lot_id, "b_holder": holder_id, "b_delta": delta}
            for (lot_id, holder_id), delta in deltas.items()
        ],
    )


def _holder_refs(session: Session, ids: set[int]) -> dict[int, tuple[str, str | None]]:
    """Each holder's ref and the code of the depot that answers for it."""
    home = aliased(Holder)
    rows = session.execute(
        select(Holder.id, Holder.kind, Holder.code, home.code)
        .outerjoin(home, home.id == Holder.home_depot_id)
        .where(Holder.id.in_(ids))
    )
    return {
        hid: (f"{kind}:{code}", code if kind == "depot" else home_code)
        for hid, kind, code, home_code in rows
    }


def _post_reversal(uow: UnitOfWork, request: MovementRequest) -> PostedMovement:
    session = uow.session
    if request.reverses is None:
        raise Invalid("a reversal names the movement it reverses", field="reverses")
    if not request.reason:
        raise Invalid("a reversal needs a reason", field="reason")
    if request.lines:
        raise Invalid("a reversal mirrors the original's lines; leave lines empty", field="lines")
    original = session.scalar(select(Movement).where(Movement.id == request.reverses))
    if original is None:
        raise Invalid(f"no movement {request.reverses}", field="reverses")
    kind = Kind(original.kind)
    if kind is Kind.REVERSAL or kind in TRANSFER_KINDS:
        raise Conflict(f"a {kind} cannot be reversed; post the correcting movement instead")
    reversed_by = session.scalar(select(Movement.id).where(Movement.reverses == original.id))
    if reversed_by is not None:
        raise Conflict(f"movement {original.id} was already reversed by {reversed_by}")
    source, destination = original.to_holder, original.from_holder
    source_answer = accountability.answer_of(source, destination)
    destination_answer = accountability.answer_of(destination, source)
    # Undoing a recovery of another depot's loss puts the weapon back on that depot's books.
    crossed_to = session.scalar(
        select(Holder.code)
        .join(Discrepancy, Discrepancy.depot_id == Holder.id)
        .where(
            Discrepancy.movement_id == original.id,
            Discrepancy.kind == str(DiscrepancyKind.RECOVERED_ELSEWHERE),
        )
        .limit(1)
    )
    if crossed_to is not None and destination.kind == "lost":
        destination_answer = Answer("lost", crossed_to)
    accountability.require(
        uow, Action.REVERSAL, source=source_answer, destination=destination_answer
    )
    _check_times(uow, request)
    plan = Plan()
    for line_no, line in enumerate(movement_lines(session, original.seq)):
        plan.lines.append(PostedLine(line_no, line.quantity, weapon=line.weapon, lot=line.lot))
        if line.weapon is not None:
            plan.moving_weapons.append((line_no, line.weapon))
        elif line.lot is not None:
            plan.lot_debits[line.lot.id] += line.quantity
            plan.lot_credits[line.lot.id] += line.quantity
            plan.lot_labels.setdefault(line.lot.id, (line_no, line.lot))
    return _record(uow, request, source, destination, plan, reverses=original.id)


def movement_lines(session: Session, seq: int) -> list[PostedLine]:
    """The lines of the movement numbered `seq`, with what they name, in line order."""
    weapon_type, lot_type = aliased(ItemType), aliased(ItemType)
    rows = session.execute(
        select(
            MovementLine.line_no,
            MovementLine.quantity,
            MovementLine.registers,
            Weapon.id,
            Weapon.serial,
            Weapon.manufacturer,
            weapon_type.code,
            Lot.id,
            Lot.lot_number,
            lot_type.code,
        )
        .outerjoin(Weapon, MovementLine.weapon_id == Weapon.id)
        .outerjoin(weapon_type, Weapon.item_type_id == weapon_type.id)
        .outerjoin(Lot, MovementLine.lot_id == Lot.id)
        .outerjoin(lot_type, Lot.item_type_id == lot_type.id)
        .where(MovementLine.movement_seq == seq)
        .order_by(MovementLine.line_no)
    )
    return [
        PostedLine(
            line_no,
            quantity,
            weapon=WeaponRow(wid, serial, maker, wtype) if wid is not None else None,
            lot=LotRow(lid, number, ltype) if lid is not None else None,
            registers=registers,
        )
        for line_no, quantity, registers, wid, serial, maker, wtype, lid, number, ltype in rows
    ]


def _audit_changes(
    movement: Movement, source: Holder, destination: Holder, plan: Plan
) -> dict[str, Any]:
    return {
        "movement": movement.id,
        "kind": movement.kind,
        "from": source.ref,
        "to": destination.ref,
        "occurred_at": movement.occurred_at,
        "document_ref": movement.document_ref,
        "due_back_at": movement.due_back_at,
        "case_ref": movement.case_ref,
        "reason": movement.reason,
        "certificate_ref": movement.certificate_ref,
        "reverses": movement.reverses,
        "transfer": movement.transfer_id,
        "late_entry": movement.late_entry,
        "lines": [
            [
                line.line_no,
                "weapon",
                line.weapon.id,
                line.weapon.item_type,
                line.weapon.manufacturer,
                line.weapon.serial,
            ]
            if line.weapon
            else [line.line_no, "lot", line.lot.id if line.lot else None, line.quantity]
            for line in plan.lines
        ],
        "registered_lots": [[lot["id"], lot["lot_number"]] for lot in plan.new_lots],
    }
