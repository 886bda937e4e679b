"""Asking the accountability policy (inventory.domain.policy) and carrying out what it answers:
the depot each holder answers to, the 403 (or the 404 that hides what a clerk may not see), and
for a movement that takes stock out of another depot's books its discrepancy, its link to an open
loss and its alert."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from ..db.models import Discrepancy, Holder, Movement, WeaponHolding
from ..domain.discrepancies import DiscrepancyKind
from ..domain.policy import Action, Answer, Decision, decide, may_read
from . import holders
from .errors import Forbidden, NotFound
from .unit_of_work import UnitOfWork


def answer_of(holder: Holder, other: Holder | None = None) -> Answer:
    """`holder` as the policy sees it. `lost`, `expended` and `destroyed` take the depot of the
    other side of a movement into or out of them (what a depot loses is lost from that depot);
    a recovery's per-weapon answer comes from `losses_of` instead."""
    depot = holders.depot_of(holder)
    if holder.kind == "lost" and other is not None:
        depot = holders.depot_of(other)
    return Answer(holder.kind, depot)


def require(
    uow: UnitOfWork,
    action: Action,
    *,
    source: Answer | None = None,
    destination: Answer | None = None,
    depot: str | None = None,
    hide: str | None = None,
) -> Decision:
    """The policy's decision, or a 403 saying why. With `hide` (a 404's detail), a clerk refused
    for a depot they cannot read gets that 404 instead, so the refusal reveals nothing."""
    decision = decide(action, uow.actor, source=source, destination=destination, depot=depot)
    if decision.allowed:
        return decision
    if hide is not None and not may_read(uow.actor, decision.acting_depot):
        raise NotFound(hide)
    raise Forbidden(decision.reason)


@dataclass(frozen=True)
class LostFrom:
    """For a weapon in `lost`: the depot that lost it, and its open reported loss if any."""

    depot: Holder
    loss_seq: int | None = None
    loss_id: uuid.UUID | None = None
    loss_status: str | None = None


def losses_of(
    session: Session, weapon_ids: list[uuid.UUID], lost: Holder
) -> dict[uuid.UUID, LostFrom]:
    """The depot each weapon now in `lost` was lost from: its open reported loss's depot, else the
    depot of the holder the movement that put it there took it from."""
    if not weapon_ids:
        return {}
    taken_from = aliased(Holder)
    placed = session.execute(
        select(WeaponHolding.weapon_id, taken_from.kind, taken_from.id, taken_from.home_depot_id)
        .join(Movement, Movement.seq == WeaponHolding.movement_seq)
        .join(taken_from, taken_from.id == Movement.from_holder_id)
        .where(WeaponHolding.weapon_id.in_(weapon_ids), WeaponHolding.holder_id == lost.id)
    ).all()
    depot_ids = {wid: (hid if kind == "depot" else home) for wid, kind, hid, home in placed}
    open_losses = {
        row.weapon_id: row
        for row in session.execute(
            select(
                Discrepancy.weapon_id,
                Discrepancy.seq,
                Discrepancy.id,
                Discrepancy.status,
                Discrepancy.depot_id,
            ).where(
                Discrepancy.kind == str(DiscrepancyKind.REPORTED_LOSS),
                Discrepancy.status != "resolved",
                Discrepancy.weapon_id.in_(weapon_ids),
            )
        )
    }
    for wid, loss in open_losses.items():
        if loss.depot_id is not None:
            depot_ids[wid] = loss.depot_id
    wanted = {did for did in depot_ids.values() if did is not None}
    depots = {
        holder.id: holder
        for holder in session.scalars(select(Holder).where(Holder.id.in_(wanted))).unique()
    }
    found: dict[uuid.UUID, LostFrom] = {}
    for wid, did in depot_ids.items():
        if did is None:
            continue
        if (open_loss := open_losses.get(wid)) is None:
            found[wid] = LostFrom(depots[did])
        else:
            found[wid] = LostFrom(depots[did], open_loss.seq, open_loss.id, open_loss.status)
    return found


@dataclass
class Crossing:
    """Stock a movement takes out of what `depot` answers for, and what that opens there."""

    depot: Holder
    opens: DiscrepancyKind
    weapons: list[uuid.UUID] = field(default_factory=list)
    lots: list[tuple[uuid.UUID, int]] = field(default_factory=list)


def missing_references(
    crossed: list[Crossing], document_ref: str | None, what: str
) -> dict[str, list[str]]:
    """The field errors of a cross-depot movement without its document (empty if none)."""
    if not crossed or (document_ref and document_ref.strip()):
        return {}
    depots = ", ".join(c.depot.ref for c in crossed)
    return {
        "document_ref": [
            f"this {what} takes stock out of what {depots} answers for: it needs a document_ref "
            "(the hand-in or police receipt)"
        ]
    }


def by_depot(items: dict[uuid.UUID, LostFrom]) -> dict[str, list[uuid.UUID]]:
    grouped: dict[str, list[uuid.UUID]] = defaultdict(list)
    for wid, lost in items.items():
        grouped[lost.depot.code].append(wid)
    return grouped
