"""Weapon counts per holder and the freshness of each depot's store: summaries of
`weapon_holdings` kept in the transaction of every movement and stocktake close, so the current
accountability report reads a few rows per depot instead of every holding.

`holder_weapon_counts` has, per holder, the weapons it holds and the weapons lost from it (in
`lost`, their last movement a loss from it). `in_store_freshness` has, per depot, its weapons in
store by `fresh_since`: when the verification period started running for them (arrival or last
verification, whichever is later). Weapons overdue for verification are the rows below the cutoff.

Each change is one upsert per table, its rows in key order (so concurrent movements queue on a
holder's rows instead of deadlocking). A freshness row that reaches 0 is removed (every arrival
makes one, so they would pile up in the range the report scans); a holder's count stays, at 0.
`projection.check` compares both with the full computation (`counts_from`, `freshness_from`);
`projection.rebuild` refills them.
"""

from __future__ import annotations

import functools
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    case,
    delete,
    false,
    func,
    select,
    true,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..db.bulk import among
from ..db.models import (
    Holder,
    HolderWeaponCount,
    InStoreFreshness,
    Movement,
    WeaponHolding,
    WeaponVerification,
)
from . import holders
from .lines import BATCH

_Query = TypeVar("_Query", bound=Select[*tuple[Any, ...]])

_COUNTS: Table = HolderWeaponCount.__table__  # type: ignore[assignment]
_FRESHNESS: Table = InStoreFreshness.__table__  # type: ignore[assignment]


def fresh_since(arrived_at: Any, verified_at: Any) -> ColumnElement[datetime]:
    """The later of a weapon's arrival where it is and its last verification (if any)."""
    return case((verified_at > arrived_at, verified_at), else_=arrived_at)


@dataclass
class Leaving:
    """What a movement takes off its source's summaries: how many weapons, and (read before they
    move) the holders weapons leaving `lost` were lost from, or the freshness of weapons leaving a
    depot's store."""

    source: Holder
    weapons: int
    lost_from: dict[int, int] = field(default_factory=dict)
    fresh: dict[datetime, int] = field(default_factory=dict)


def leaving(session: Session, weapon_ids: list[uuid.UUID], source: Holder) -> Leaving:
    """Read what the weapons `lock_weapons` locked at `source` count under, before they move."""
    found = Leaving(source, len(weapon_ids))
    if source.kind not in ("lost", "depot"):
        return found
    for start in range(0, len(weapon_ids), BATCH):
        chunk = among(session, WeaponHolding.weapon_id, weapon_ids[start : start + BATCH])
        if source.kind == "lost":
            for holder_id, n in session.execute(
                select(Movement.from_holder_id, func.count())
                .select_from(WeaponHolding)
                .join(Movement, Movement.seq == WeaponHolding.movement_seq)
                .where(chunk)
                .group_by(Movement.from_holder_id)
            ):
                found.lost_from[holder_id] = found.lost_from.get(holder_id, 0) + n
        else:
            since = fresh_since(Movement.recorded_at, WeaponVerification.verified_at)
            for moment, n in session.execute(
                select(since, func.count())
                .select_from(WeaponHolding)
                .join(Movement, Movement.seq == WeaponHolding.movement_seq)
                .outerjoin(
                    WeaponVerification, WeaponVerification.weapon_id == WeaponHolding.weapon_id
                )
                .where(chunk)
                .group_by(since)
            ):
                found.fresh[moment] = found.fresh.get(moment, 0) + n
    return found


def record_movement(
    session: Session, moved: Leaving, destination: Holder, registered: int, now: datetime
) -> None:
    """Count a movement recorded at `now`: `moved` leaves its source, and those weapons and the
    `registered` ones the movement brings onto the books arrive at `destination`."""
    source = moved.source
    counts: dict[tuple[int, bool], int] = defaultdict(int)
    if source.kind == "lost":
        for holder_id, n in moved.lost_from.items():
            counts[(holder_id, True)] -= n
    else:
        counts[(source.id, False)] -= moved.weapons
    arriving = moved.weapons + registered
    if destination.kind == "lost":
        counts[(source.id, True)] += arriving
    else:
        counts[(destination.id, False)] += arriving
    freshness: dict[tuple[int, datetime], int] = defaultdict(int)
    if source.kind == "depot":
        for moment, n in moved.fresh.items():
            freshness[(source.id, moment)] -= n
    if destination.kind == "depot":
        freshness[(destination.id, now)] += arriving
    _add(session, _COUNTS, ("holder_id", "lost"), counts, remove_emptied=False)
    _add(session, _FRESHNESS, ("holder_id", "fresh_since"), freshness)


def in_store_among(statement: _Query, depot: Holder, weapon_ids: Any) -> _Query:
    """`statement` (over `weapon_holdings`) kept to `depot`'s holdings whose weapon is among
    `weapon_ids` (a select of one column of ids, which may repeat).

    An outer join filtered by a flag, not `IN`: PostgreSQL drives an `IN` from the ids when it
    believes them few, and a count just posted has stale statistics (~100 rows estimated for
    100,000), so it would read every counted weapon's holding by primary key. Kept an outer join,
    the depot's holdings (read by holder) are matched against the ids in one hash."""
    listed = weapon_ids.add_columns(true().label("listed")).distinct().subquery()
    return statement.outerjoin(listed, list(listed.c)[0] == WeaponHolding.weapon_id).where(
        WeaponHolding.holder_id == depot.id, func.coalesce(listed.c.listed, false())
    )


def record_verification(session: Session, depot: Holder, weapon_ids: Any, now: datetime) -> None:
    """Make the weapons in `depot`'s store among `weapon_ids` (a select of ids) fresh since `now`,
    before their verifications are written."""
    # Share-lock those holdings first, in id order as movements lock them: a movement taking one
    # out of the depot meanwhile would otherwise take it off the freshness row it had before.
    # A statement of its own: locking in the read below, PostgreSQL would re-check a row a
    # movement changed while we waited against the movement row it had already joined, and drop
    # a weapon moved out and back in from the read while the upsert still verifies it.
    session.execute(
        in_store_among(select(WeaponHolding.weapon_id), depot, weapon_ids)
        .order_by(WeaponHolding.weapon_id)
        .with_for_update(read=True, of=WeaponHolding)
    )
    since = fresh_since(Movement.recorded_at, WeaponVerification.verified_at)
    held = (
        select(since, func.count())
        .select_from(WeaponHolding)
        .join(Movement, Movement.seq == WeaponHolding.movement_seq)
        .outerjoin(WeaponVerification, WeaponVerification.weapon_id == WeaponHolding.weapon_id)
    )
    rows = session.execute(in_store_among(held, depot, weapon_ids).group_by(since)).all()
    freshness: dict[tuple[int, datetime], int] = defaultdict(int)
    for moment, n in rows:
        freshness[(depot.id, moment)] -= n
        freshness[(depot.id, now)] += n
    _add(session, _FRESHNESS, ("holder_id", "fresh_since"), freshness)


def _add(
    session: Session,
    table: Table,
    key: tuple[str, str],
    deltas: dict[Any, int],
    remove_emptied: bool = True,
) -> None:
    """Add each delta to its row (made if missing), in key order; remove rows left at 0."""
    rows = [{key[0]: k[0], key[1]: k[1], "weapons": n} for k, n in sorted(deltas.items()) if n != 0]
    if not rows:
        return
    # With RETURNING the rows go as one multi-row INSERT (SQLAlchemy's "insertmanyvalues").
    added = session.execute(_upsert(table.name, session.get_bind().dialect.name), rows)
    emptied = [(a, b) for a, b, weapons in added if weapons == 0]
    if emptied and remove_emptied:
        session.execute(
            delete(table).where(
                tuple_(table.c[key[0]], table.c[key[1]]).in_(emptied), table.c.weapons == 0
            )
        )


@functools.cache
def _upsert(table_name: str, dialect: str) -> Any:
    """INSERT … ON CONFLICT adding to `weapons` (one multi-row statement for many rows), made
    once: building it took longer than running it."""
    table = {_COUNTS.name: _COUNTS, _FRESHNESS.name: _FRESHNESS}[table_name]
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    return insert.on_conflict_do_update(
        index_elements=list(table.primary_key.columns),
        set_={"weapons": table.c.weapons + insert.excluded.weapons},
    ).returning(*table.primary_key.columns, table.c.weapons)


# The full computation, for `projection.check` and `projection.rebuild`.


def counts_from(positions: Any) -> Select[Any]:
    """(holder, lost, weapons) grouped from `positions` (columns weapon_id, holder_id,
    movement_seq: the holdings, or each weapon's last line in the ledger)."""
    holder = Holder.__table__.alias("holder")
    lost = holder.c.kind == "lost"
    account = case((lost, Movement.from_holder_id), else_=positions.c.holder_id)
    return (
        select(account.label("holder_id"), lost.label("lost"), func.count().label("weapons"))
        .select_from(positions)
        .join(holder, holder.c.id == positions.c.holder_id)
        .join(Movement, Movement.seq == positions.c.movement_seq)
        .group_by(account, lost)
    )


def freshness_from(positions: Any) -> Select[Any]:
    """(depot, fresh_since, weapons) grouped from `positions`, as for `counts_from`."""
    holder = Holder.__table__.alias("holder")
    since = fresh_since(Movement.recorded_at, WeaponVerification.verified_at)
    return (
        select(positions.c.holder_id, since.label("fresh_since"), func.count().label("weapons"))
        .select_from(positions)
        .join(holder, holder.c.id == positions.c.holder_id)
        .join(Movement, Movement.seq == positions.c.movement_seq)
        .outerjoin(WeaponVerification, WeaponVerification.weapon_id == positions.c.weapon_id)
        .where(holder.c.kind == "depot")
        .group_by(positions.c.holder_id, since)
    )


# What the current report reads.


@dataclass(frozen=True)
class HolderCount:
    holder_id: int  # for `lost`, the holder the weapons were lost from
    kind: str  # the holder's kind, or "lost"
    weapons: int


def counts(session: Session, depot_ids: Iterable[int]) -> list[HolderCount]:
    """Weapons held by, and lost from, every holder the depots answer for."""
    rows = session.execute(
        select(
            HolderWeaponCount.holder_id,
            HolderWeaponCount.lost,
            Holder.kind,
            HolderWeaponCount.weapons,
        )
        .join(Holder, Holder.id == HolderWeaponCount.holder_id)
        .where(holders.answering_to(depot_ids), HolderWeaponCount.weapons != 0)
    )
    return [
        HolderCount(holder_id, "lost" if lost else kind, weapons)
        for holder_id, lost, kind, weapons in rows
    ]


def overdue_in_store(
    session: Session, depot_ids: Iterable[int], cutoff: datetime
) -> dict[int, int]:
    """Per depot, the weapons in store fresh since before `cutoff`: one index range per depot."""
    return {
        holder_id: int(n)
        for holder_id, n in session.execute(
            select(InStoreFreshness.holder_id, func.sum(InStoreFreshness.weapons))
            .where(
                InStoreFreshness.holder_id.in_(sorted(depot_ids)),
                InStoreFreshness.fresh_since < cutoff,
            )
            .group_by(InStoreFreshness.holder_id)
        )
    }


@dataclass(frozen=True)
class NamedWeapon:
    holder_id: int
    kind: str
    fresh_since: datetime


def positions_of(session: Session, weapon_ids: Any, depot_ids: Iterable[int]) -> list[NamedWeapon]:
    """Where each weapon of `weapon_ids` (a select of ids) is, among the holders the depots
    answer for (`lost` excluded), and since when it is fresh."""
    since = fresh_since(Movement.recorded_at, WeaponVerification.verified_at)
    rows = session.execute(
        select(WeaponHolding.holder_id, Holder.kind, since)
        .join(Holder, Holder.id == WeaponHolding.holder_id)
        .join(Movement, Movement.seq == WeaponHolding.movement_seq)
        .outerjoin(WeaponVerification, WeaponVerification.weapon_id == WeaponHolding.weapon_id)
        .where(WeaponHolding.weapon_id.in_(weapon_ids), holders.answering_to(depot_ids))
    )
    return [NamedWeapon(holder_id, kind, moment) for holder_id, kind, moment in rows]
