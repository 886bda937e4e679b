"""The accountability report: per depot (and in total) how many weapons and rounds are on the
books, where, how many are lost or unaccounted for, and the accountability rate — now, or as the
books stood at any past time.

A depot answers for stock held by itself (`in_store`), by its units (`issued`), by the transit
accounts of transfers it dispatched (`in_transit`), and for stock whose last movement was a loss
from any of those (`lost`). `on_books = in_store + issued + in_transit`.

Unaccounted, counted once per weapon:
- lost;
- or the subject of a discrepancy open at the time of kind count_missing, receipt_shortfall,
  return_overdue, end_use_missing or sighting_outside_custody (by weapon), or in the transit
  account of a transfer with an open transit_overdue or receipt_shortfall;
- or in store and overdue for physical verification: on the depot's books longer than the policy
  period and not verified (counted in a closed stocktake of the depot) within it.
Rounds unaccounted: lost rounds, rounds in the transit account of a transfer with an open
transit_overdue or receipt_shortfall, and the shortfall of open short count_variance discrepancies.

`accountability_rate = 1 - weapons unaccounted / weapons on books` and
`rounds_accountability_rate = 1 - rounds unaccounted / rounds on books` (each 1.0 when nothing of
its kind is on the books, never below 0: lost stock is unaccounted but no longer on the books).
Every CSV column is defined in COLUMNS (served as the CSV's data dictionary).

Everything is a few grouped queries over all holders at once, never a query per weapon or depot.
The current weapon figures come from the per-holder summaries kept with every movement
(holder_counts), so they cost the same at ten million weapons as at ten thousand; a past `as_of`
is computed from the ledger.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, exists, func, literal, or_, select
from sqlalchemy.orm import Session, aliased

from ..clock import utcnow
from ..db.models import (
    Discrepancy,
    Holder,
    ItemType,
    LotHolding,
    Movement,
    MovementLine,
    Stocktake,
    StocktakeCount,
    Transfer,
    Weapon,
    WeaponHolding,
    WeaponVerification,
)
from ..domain import policy
from ..domain.actors import Actor
from ..domain.discrepancies import DiscrepancyKind
from ..settings import Settings
from . import audit_log, holder_counts, holders
from .csv_export import CsvWriter
from .errors import Forbidden, NotFound

WEAPON_FIELDS = ("on_books", "in_store", "issued", "in_transit", "lost", "unaccounted")
# Kinds that make the weapon they name unaccounted for.
WEAPON_KINDS = tuple(
    str(k)
    for k in (
        DiscrepancyKind.COUNT_MISSING,
        DiscrepancyKind.RECEIPT_SHORTFALL,
        DiscrepancyKind.RETURN_OVERDUE,
        DiscrepancyKind.END_USE_MISSING,
        DiscrepancyKind.SIGHTING_OUTSIDE_CUSTODY,
    )
)
# Kinds that make everything still in a transfer's transit account unaccounted for.
TRANSFER_KINDS = (str(DiscrepancyKind.TRANSIT_OVERDUE), str(DiscrepancyKind.RECEIPT_SHORTFALL))
WEAPON_COLUMNS = (*WEAPON_FIELDS, "verified_within_policy")
KINDS = tuple(str(k) for k in DiscrepancyKind)
STATUS_BY_KIND = {"depot": "in_store", "unit": "issued", "transit": "in_transit", "lost": "lost"}


@dataclass
class DepotAccount:
    depot: str
    weapons: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WEAPON_FIELDS, 0))
    ammunition: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WEAPON_FIELDS, 0))
    open_discrepancies: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.weapons.setdefault("verified_within_policy", 0)

    @property
    def accountability_rate(self) -> float:
        """Of the weapons on the books, the share accounted for."""
        return _rate(self.weapons)

    @property
    def rounds_accountability_rate(self) -> float:
        """Of the rounds on the books, the share accounted for."""
        return _rate(self.ammunition)

    def finish(self) -> None:
        for tally in (self.weapons, self.ammunition):
            tally["on_books"] = tally["in_store"] + tally["issued"] + tally["in_transit"]

    def add(self, other: DepotAccount) -> None:
        for mine, theirs in ((self.weapons, other.weapons), (self.ammunition, other.ammunition)):
            for name, value in theirs.items():
                mine[name] = mine.get(name, 0) + value
        for kind, n in other.open_discrepancies.items():
            self.open_discrepancies[kind] = self.open_discrepancies.get(kind, 0) + n


def _rate(tally: dict[str, int]) -> float:
    on_books = tally["on_books"]
    if on_books == 0:
        return 1.0
    return round(max(0.0, 1 - tally["unaccounted"] / on_books), 4)


@dataclass
class Report:
    as_of: datetime
    depots: list[DepotAccount]
    totals: DepotAccount


def accountability(
    session: Session,
    actor: Actor,
    settings: Settings,
    depots: list[str] | None = None,
    as_of: datetime | None = None,
) -> Report:
    """The accountability report for `depots` (default: every depot the actor may read) as the
    books stood at `as_of` (default: now)."""
    when = as_of or utcnow()
    chosen = _depots_in_scope(session, actor, depots)
    accounts = {depot_id: DepotAccount(code) for depot_id, code in chosen}
    answers_to = _answering_depots(session, set(accounts))
    flagged_transit = _flagged_transit_holders(as_of)
    cutoff = when - settings.verification_period

    weapon_rows: Iterable[Any] = (
        _current_weapon_tally(session, set(accounts), cutoff, flagged_transit)
        if as_of is None
        else session.execute(_weapon_tally(as_of, cutoff, flagged_transit))
    )
    for holder_id, kind, lost_from, count, unaccounted, verified in weapon_rows:
        depot_id = answers_to.get(lost_from if kind == "lost" else holder_id)
        if depot_id in accounts:
            tally = accounts[depot_id].weapons
            tally[STATUS_BY_KIND[kind]] += count
            tally["unaccounted"] += int(unaccounted or 0)
            tally["verified_within_policy"] += int(verified or 0)

    flagged_ids = set(session.scalars(flagged_transit))
    for holder_id, kind, rounds in session.execute(_round_balances(as_of, set(accounts))):
        depot_id = answers_to.get(holder_id)
        if depot_id in accounts and kind in ("depot", "unit", "transit"):
            tally = accounts[depot_id].ammunition
            tally[STATUS_BY_KIND[kind]] += int(rounds)
            if holder_id in flagged_ids:
                tally["unaccounted"] += int(rounds)
    lost_rounds: dict[int, int] = defaultdict(int)
    for source, destination, source_kind, rounds in session.execute(_lost_round_moves(as_of)):
        if source_kind == "lost":  # recovered or reversed out of `lost`
            lost_rounds[answers_to.get(destination, -1)] -= int(rounds)
        else:
            lost_rounds[answers_to.get(source, -1)] += int(rounds)
    for depot_id, account in accounts.items():
        rounds = max(0, lost_rounds.get(depot_id, 0))
        account.ammunition["lost"] = rounds
        account.ammunition["unaccounted"] += rounds

    for depot_id, kind, severity, n, quantity in session.execute(
        _open_discrepancies(as_of, set(accounts))
    ):
        if depot_id in accounts:
            account = accounts[depot_id]
            account.open_discrepancies[kind] = account.open_discrepancies.get(kind, 0) + n
            if kind == str(DiscrepancyKind.COUNT_VARIANCE) and severity == "high":
                account.ammunition["unaccounted"] += int(quantity or 0)

    totals = DepotAccount("TOTAL")
    for account in accounts.values():
        account.finish()
        totals.add(account)
    totals.finish()
    ordered = sorted(accounts.values(), key=lambda a: a.depot)
    return Report(when, ordered, totals)


def _depots_in_scope(
    session: Session, actor: Actor, codes: list[str] | None
) -> list[tuple[int, str]]:
    stmt = select(Holder.id, Holder.code).where(Holder.kind == "depot")
    if codes:
        found = {code: hid for hid, code in session.execute(stmt.where(Holder.code.in_(codes)))}
        unknown = sorted(set(codes) - found.keys())
        if unknown:
            raise NotFound(f"no depot {', '.join(unknown)}")
        outside = sorted(c for c in codes if not policy.may_read(actor, c))
        if outside:
            raise Forbidden(f"depot {', '.join(outside)} is not one of your depots")
        return [(hid, code) for code, hid in found.items()]
    if (readable := policy.readable_depots(actor)) is not None:
        stmt = stmt.where(Holder.code.in_(sorted(readable)))
    return [(hid, code) for hid, code in session.execute(stmt)]


def _answering_depots(session: Session, depot_ids: set[int]) -> dict[int, int]:
    """Holder id → the depot among `depot_ids` that answers for it: a depot itself, a unit's home
    depot, a transfer's transit account's origin depot."""
    answers: dict[int, int] = {}
    for hid, kind, home in session.execute(
        select(Holder.id, Holder.kind, Holder.home_depot_id).where(
            Holder.kind.in_(("depot", "unit")), holders.answering_to(depot_ids)
        )
    ):
        if kind == "depot":
            answers[hid] = hid
        elif home is not None:
            answers[hid] = home
    for transit, origin in session.execute(
        select(Transfer.transit_holder_id, Transfer.from_holder_id).where(
            Transfer.from_holder_id.in_(sorted(depot_ids))
        )
    ):
        if origin in answers:
            answers[transit] = answers[origin]
    return answers


def _open_at(as_of: datetime | None) -> ColumnElement[bool]:
    """The discrepancy was open (or investigating) at `as_of` (now when None)."""
    if as_of is None:
        return Discrepancy.status != "resolved"
    return and_(
        Discrepancy.detected_at <= as_of,
        or_(Discrepancy.resolved_at.is_(None), Discrepancy.resolved_at > as_of),
    )


def _naming(as_of: datetime | None) -> list[ColumnElement[bool]]:
    """A discrepancy open at `as_of` that makes the weapon it names unaccounted for."""
    return [Discrepancy.weapon_id.is_not(None), Discrepancy.kind.in_(WEAPON_KINDS), _open_at(as_of)]


def _flagged_transit_holders(as_of: datetime | None) -> Select[Any]:
    """Transit accounts of transfers with an open transit_overdue or receipt_shortfall."""
    return (
        select(Transfer.transit_holder_id)
        .join(Discrepancy, Discrepancy.transfer_id == Transfer.id)
        .where(Discrepancy.kind.in_(TRANSFER_KINDS), _open_at(as_of))
        .distinct()
    )


def _positions(as_of: datetime | None) -> Any:
    """Per weapon: its holder, where its last movement came from, and when that was recorded —
    from the projection now, or from each weapon's last line recorded by `as_of`."""
    if as_of is None:
        return (
            select(
                WeaponHolding.weapon_id.label("weapon_id"),
                WeaponHolding.holder_id.label("holder_id"),
                Movement.from_holder_id.label("from_holder_id"),
                Movement.recorded_at.label("arrived_at"),
            )
            .join(Movement, Movement.seq == WeaponHolding.movement_seq)
            .subquery()
        )
    later_line, later = aliased(MovementLine), aliased(Movement)
    return (
        select(
            MovementLine.weapon_id.label("weapon_id"),
            Movement.to_holder_id.label("holder_id"),
            Movement.from_holder_id.label("from_holder_id"),
            Movement.recorded_at.label("arrived_at"),
        )
        .join(Movement, Movement.seq == MovementLine.movement_seq)
        .where(
            MovementLine.weapon_id.is_not(None),
            Movement.recorded_at <= as_of,
            ~exists()
            .where(
                later_line.weapon_id == MovementLine.weapon_id,
                later_line.movement_seq > MovementLine.movement_seq,
                later.seq == later_line.movement_seq,
                later.recorded_at <= as_of,
            )
            .correlate(MovementLine),
        )
        .subquery()
    )


def _verified_since(position: Any, as_of: datetime | None, cutoff: datetime) -> Any:
    if as_of is None:
        return exists().where(
            WeaponVerification.weapon_id == position.c.weapon_id,
            WeaponVerification.verified_at >= cutoff,
        )
    return exists().where(
        StocktakeCount.weapon_id == position.c.weapon_id,
        Stocktake.id == StocktakeCount.stocktake_id,
        Stocktake.depot_id == position.c.holder_id,
        Stocktake.status == "closed",
        Stocktake.closed_at >= cutoff,
        Stocktake.closed_at <= as_of,
    )


@dataclass(frozen=True)
class _WeaponState:
    """Each weapon's position at `as_of` joined with what makes it unaccounted for."""

    positions: Any  # the FROM clause: positions outer-joined to named (and verified) weapons
    p: Any  # the positions subquery's columns
    holder: Any  # the holder the weapon is at
    named: ColumnElement[bool]  # an open discrepancy names it
    named_since: Any  # when the oldest of those was detected
    in_flagged_transit: ColumnElement[bool]
    within_policy: ColumnElement[bool]
    unaccounted: ColumnElement[bool]


def _weapon_state(
    as_of: datetime | None, cutoff: datetime, flagged_transit: Select[Any]
) -> _WeaponState:
    p = _positions(as_of)
    holder = aliased(Holder)
    # Outer joins to the (small) sets of named and verified weapons: one hash join each instead
    # of a correlated subquery per weapon, which took most of the report's time at 1,000,000.
    named_weapons = (
        select(
            Discrepancy.weapon_id.label("weapon_id"),
            func.min(Discrepancy.detected_at).label("since"),
        )
        .where(*_naming(as_of))
        .group_by(Discrepancy.weapon_id)
        .subquery()
    )
    named = named_weapons.c.weapon_id.is_not(None)
    positions = p.outerjoin(named_weapons, named_weapons.c.weapon_id == p.c.weapon_id)
    if as_of is None:
        verified_weapons = (
            select(WeaponVerification.weapon_id.label("weapon_id"))
            .where(WeaponVerification.verified_at >= cutoff)
            .distinct()
            .subquery()
        )
        verified = verified_weapons.c.weapon_id.is_not(None)
        positions = positions.outerjoin(
            verified_weapons, verified_weapons.c.weapon_id == p.c.weapon_id
        )
    else:
        verified = _verified_since(p, as_of, cutoff)
    within_policy = or_(p.c.arrived_at >= cutoff, verified)
    in_flagged_transit = p.c.holder_id.in_(flagged_transit)
    unaccounted = or_(
        holder.kind == "lost",
        named,
        in_flagged_transit,
        and_(holder.kind == "depot", ~within_policy),
    )
    return _WeaponState(
        positions.join(holder, holder.id == p.c.holder_id),
        p,
        holder,
        named,
        named_weapons.c.since,
        in_flagged_transit,
        within_policy,
        unaccounted,
    )


def _weapon_tally(as_of: datetime | None, cutoff: datetime, flagged_transit: Select[Any]) -> Any:
    """Per holder (and, for `lost`, per holder lost from): weapons, how many are unaccounted
    for, and how many (in store) are within the verification policy."""
    w = _weapon_state(as_of, cutoff, flagged_transit)
    p, holder = w.p, w.holder
    lost_from = case((holder.kind == "lost", p.c.from_holder_id), else_=literal(None))
    one = literal(1)
    return (
        select(
            p.c.holder_id,
            holder.kind,
            lost_from,
            func.count(),
            func.sum(case((w.unaccounted, one), else_=0)),
            func.sum(case((and_(holder.kind == "depot", w.within_policy), one), else_=0)),
        )
        .select_from(w.positions)
        .where(holder.kind.in_(tuple(STATUS_BY_KIND)))
        .group_by(p.c.holder_id, holder.kind, lost_from)
    )


def _current_weapon_tally(
    session: Session, depot_ids: set[int], cutoff: datetime, flagged_transit: Select[Any]
) -> list[tuple[int, str, int, int, int, int]]:
    """The rows of `_weapon_tally` now, for the depots `depot_ids` only, from the summaries kept
    with every movement (holder_counts) and the small sets of flagged transit accounts and named
    weapons: it reads rows per holder and per overdue moment, never every holding."""
    flagged = set(session.scalars(flagged_transit))
    overdue = holder_counts.overdue_in_store(session, depot_ids, cutoff)
    # Named weapons not already unaccounted for by where they are (lost is left out).
    named: dict[int, int] = defaultdict(int)
    named_weapons = select(Discrepancy.weapon_id).where(*_naming(None))
    for weapon in holder_counts.positions_of(session, named_weapons, depot_ids):
        if weapon.holder_id in flagged or (weapon.kind == "depot" and weapon.fresh_since < cutoff):
            continue
        named[weapon.holder_id] += 1
    rows = []
    for held in holder_counts.counts(session, depot_ids):
        hid, verified = held.holder_id, 0
        if held.kind == "lost" or hid in flagged:
            unaccounted = held.weapons
        elif held.kind == "depot":
            unaccounted = overdue.get(hid, 0) + named[hid]
            verified = held.weapons - overdue.get(hid, 0)
        else:
            unaccounted = named[hid]
        rows.append((hid, held.kind, hid, held.weapons, unaccounted, verified))
    return rows


@dataclass(frozen=True)
class UnaccountedWeapon:
    depot: str
    weapon_id: Any
    serial: str
    manufacturer: str
    item_type: str
    holder: str
    reason: str  # lost | open discrepancy | transfer overdue or short | not verified in time
    since: datetime  # when it was lost, named, or came onto the holder's books


def unaccounted_weapons(
    session: Session,
    actor: Actor,
    settings: Settings,
    depots: list[str] | None = None,
    as_of: datetime | None = None,
) -> list[UnaccountedWeapon]:
    """Each weapon the report counts as unaccounted for, by depot and serial: the same rule,
    the same scope and the same `as_of` as `accountability`."""
    when = as_of or utcnow()
    chosen = dict(_depots_in_scope(session, actor, depots))
    answers_to = _answering_depots(session, set(chosen))
    w = _weapon_state(as_of, when - settings.verification_period, _flagged_transit_holders(as_of))
    p, holder = w.p, w.holder
    reason = case(
        (holder.kind == "lost", literal("lost")),
        (w.named, literal("open discrepancy")),
        (w.in_flagged_transit, literal("transfer overdue or short")),
        else_=literal("not verified in time"),
    )
    rows = session.execute(
        select(
            p.c.holder_id,
            holder.kind,
            holder.code,
            p.c.from_holder_id,
            Weapon.id,
            Weapon.serial,
            Weapon.manufacturer,
            ItemType.code,
            reason,
            p.c.arrived_at,
            w.named_since,
        )
        .select_from(w.positions)
        .join(Weapon, Weapon.id == p.c.weapon_id)
        .join(ItemType, ItemType.id == Weapon.item_type_id)
        .where(holder.kind.in_(tuple(STATUS_BY_KIND)), w.unaccounted)
    )
    found = []
    for hid, kind, code, came_from, wid, serial, maker, type_, why, arrived, named_at in rows:
        depot_id = answers_to.get(came_from if kind == "lost" else hid)
        if depot_id in chosen:
            since = named_at if why == "open discrepancy" and named_at else arrived
            found.append(
                UnaccountedWeapon(
                    chosen[depot_id], wid, serial, maker, type_, f"{kind}:{code}", why, since
                )
            )
    return sorted(found, key=lambda u: (u.depot, u.manufacturer, u.serial))


def _round_balances(as_of: datetime | None, depot_ids: set[int]) -> Any:
    """Rounds per holder the depots answer for (all lots together), now or as the books stood at
    `as_of`."""
    holder = aliased(Holder)
    if as_of is None:
        return (
            select(LotHolding.holder_id, holder.kind, func.sum(LotHolding.quantity))
            .join(holder, holder.id == LotHolding.holder_id)
            .where(holders.answering_to(depot_ids, holder))
            .group_by(LotHolding.holder_id, holder.kind)
        )
    credits = (
        select(Movement.to_holder_id.label("holder_id"), MovementLine.quantity.label("delta"))
        .join(Movement, Movement.seq == MovementLine.movement_seq)
        .where(MovementLine.lot_id.is_not(None), Movement.recorded_at <= as_of)
    )
    debits = (
        select(Movement.from_holder_id, -MovementLine.quantity)
        .join(Movement, Movement.seq == MovementLine.movement_seq)
        .where(
            MovementLine.lot_id.is_not(None),
            MovementLine.registers.is_(False),
            Movement.recorded_at <= as_of,
        )
    )
    entries = credits.union_all(debits).subquery()
    return (
        select(entries.c.holder_id, holder.kind, func.sum(entries.c.delta))
        .join(holder, holder.id == entries.c.holder_id)
        .where(holders.answering_to(depot_ids, holder))
        .group_by(entries.c.holder_id, holder.kind)
    )


def _lost_round_moves(as_of: datetime | None) -> Any:
    """Rounds moved into or out of `lost`, per (from, to) pair."""
    source, destination = aliased(Holder), aliased(Holder)
    stmt = (
        select(
            Movement.from_holder_id,
            Movement.to_holder_id,
            source.kind,
            func.sum(MovementLine.quantity),
        )
        .join(Movement, Movement.seq == MovementLine.movement_seq)
        .join(source, source.id == Movement.from_holder_id)
        .join(destination, destination.id == Movement.to_holder_id)
        .where(
            MovementLine.lot_id.is_not(None),
            or_(source.kind == "lost", destination.kind == "lost"),
        )
        .group_by(Movement.from_holder_id, Movement.to_holder_id, source.kind)
    )
    if as_of is not None:
        stmt = stmt.where(Movement.recorded_at <= as_of)
    return stmt


def _open_discrepancies(as_of: datetime | None, depot_ids: set[int]) -> Any:
    return (
        select(
            Discrepancy.depot_id,
            Discrepancy.kind,
            Discrepancy.severity,
            func.count(),
            func.sum(Discrepancy.quantity),
        )
        .where(Discrepancy.depot_id.in_(sorted(depot_ids)), _open_at(as_of))
        .group_by(Discrepancy.depot_id, Discrepancy.kind, Discrepancy.severity)
    )


def _plain(account: DepotAccount) -> dict[str, Any]:
    return {
        "weapons": {name: account.weapons[name] for name in WEAPON_COLUMNS},
        "ammunition": {name: account.ammunition[name] for name in WEAPON_FIELDS},
        "open_discrepancies": dict(sorted(account.open_discrepancies.items())),
        "accountability_rate": account.accountability_rate,
        "rounds_accountability_rate": account.rounds_accountability_rate,
    }


def as_json(report: Report) -> dict[str, Any]:
    """The report as the API and the CLI give it."""
    return {
        "as_of": audit_log.timestamp(report.as_of),
        "depots": [{"depot": a.depot, **_plain(a)} for a in report.depots],
        "totals": _plain(report.totals),
    }


_TALLY_MEANING = {
    "on_books": "on the depot's books: in_store + issued + in_transit",
    "in_store": "held by the depot itself",
    "issued": "held by units the depot issued to",
    "in_transit": "in the transit accounts of transfers the depot dispatched, not yet received",
    "lost": "whose last movement was a loss (lost, stolen) from the depot, its units or its "
    "transfers; no longer on the books",
}
_KIND_MEANING = {
    "transit_overdue": "a transfer not received by its expected date",
    "receipt_shortfall": "a transfer received with less than was dispatched",
    "receipt_surplus": "a transfer received with more than was dispatched",
    "return_overdue": "issued stock not returned by its due_back_at",
    "count_missing": "a weapon on the books not found by a stocktake",
    "count_unexpected": "a weapon found by a stocktake that the books place elsewhere or nowhere",
    "count_variance": "a lot counted at a quantity other than the books'",
    "verification_overdue": "a weapon in store not verified within the policy period",
    "reported_loss": "a loss or theft posted by the depot",
    "sighting_outside_custody": "a weapon sighted outside the custody the books give it",
    "unknown_serial_sighted": "a sighted serial that is on nobody's books",
    "end_use_missing": "an exported weapon missing at an end-use check",
    "end_use_verification_overdue": "an export whose end-use check is overdue",
    "late_entry": "a movement recorded long (by default 72 h) after it happened",
    "returned_elsewhere": "the depot's issued stock handed in at another depot",
    "recovered_elsewhere": "a weapon the depot lost, recovered into another depot",
}


def _columns() -> dict[str, str]:
    columns = {
        "as_of": "the moment the books are reported at (ISO 8601, UTC); the same on every row",
        "depot": "the depot's code",
    }
    for name, meaning in _TALLY_MEANING.items():
        columns[f"weapons_{name}"] = f"weapons {meaning}"
    columns["weapons_unaccounted"] = (
        "weapons unaccounted for, each counted once: lost; or named by an open count_missing, "
        "receipt_shortfall, return_overdue, end_use_missing or sighting_outside_custody; or in "
        "the transit account of a transfer with an open transit_overdue or receipt_shortfall; or "
        "in store longer than the verification period and not verified within it"
    )
    columns["weapons_verified_within_policy"] = (
        "weapons in store physically verified (e.g. counted in a closed stocktake of the depot) "
        "within the verification period (by default 90 days), or in store for less than that "
        "period"
    )
    for name, meaning in _TALLY_MEANING.items():
        columns[f"ammunition_{name}"] = f"rounds (all lots together) {meaning}"
    columns["ammunition_unaccounted"] = (
        "rounds unaccounted for: lost rounds, rounds in the transit account of a transfer with an "
        "open transit_overdue or receipt_shortfall, and the shortfall of open count_variance "
        "discrepancies that found fewer rounds than the books"
    )
    for kind in KINDS:
        columns[f"open_{kind}"] = f"open {kind} discrepancies of the depot: {_KIND_MEANING[kind]}"
    columns["accountability_rate"] = (
        "weapons: 1 - weapons_unaccounted / weapons_on_books, rounded to 4 places (1 when no "
        "weapons are on the books, never below 0)"
    )
    columns["rounds_accountability_rate"] = (
        "rounds: 1 - ammunition_unaccounted / ammunition_on_books, rounded to 4 places (1 when no "
        "rounds are on the books, never below 0)"
    )
    return columns


# Every column of the CSV, in order, with its definition: the CSV's data dictionary.
COLUMNS = _columns()


def as_csv(report: Report) -> str:
    """One header row (the names in COLUMNS) and one row per depot (no totals row); every cell a
    plain value, and none a formula (the one CSV writer sees to that)."""
    out = CsvWriter()
    out.writerow(list(COLUMNS))
    as_of = audit_log.timestamp(report.as_of)
    for account in report.depots:
        out.writerow(
            [
                as_of,
                account.depot,
                *(account.weapons[name] for name in WEAPON_COLUMNS),
                *(account.ammunition[name] for name in WEAPON_FIELDS),
                *(account.open_discrepancies.get(kind, 0) for kind in KINDS),
                account.accountability_rate,
                account.rounds_accountability_rate,
            ]
        )
    return out.getvalue()


def dictionary_csv() -> str:
    """The CSV's data dictionary: a `column,definition` header and one row per column."""
    out = CsvWriter()
    out.writerow(["column", "definition"])
    for column, definition in COLUMNS.items():
        out.writerow([column, definition])
    return out.getvalue()
