"""Holders as the API writes them (`kind:code`), and the depot that answers for each."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, or_, select, tuple_
from sqlalchemy.orm import Session, lazyload

from ..db.models import Holder
from ..db.models.reference import HOLDER_KINDS
from .errors import Invalid, NotFound

SYSTEM_CODES = {"lost": "LOST", "expended": "EXPENDED", "destroyed": "DESTROYED"}


def parse_ref(ref: str, field: str) -> tuple[str, str]:
    kind, sep, code = ref.partition(":")
    if kind in SYSTEM_CODES and not sep:
        return kind, SYSTEM_CODES[kind]
    if not sep or kind not in HOLDER_KINDS or not code:
        raise Invalid(
            f"{ref!r} is not a holder; write kind:code, e.g. depot:D-NORTH or unit:3-BDE",
            field=field,
        )
    return kind, code


def resolve(session: Session, ref: str, field: str) -> Holder:
    """The holder `ref` names, or a 422 naming `field` if there is none."""
    return resolve_many(session, {field: ref})[field]


# Built once: every movement resolves its `from` and `to` with it. A unit's home depot is
# loaded when asked for, usually from the session (a unit's movements name its depot too),
# instead of joined in for every holder.
_BY_REF = (
    select(Holder)
    .where(tuple_(Holder.kind, Holder.code).in_(bindparam("refs", expanding=True)))
    .options(lazyload(Holder.home_depot))
)


def resolve_many(session: Session, refs: dict[str, str]) -> dict[str, Holder]:
    """The holder each field's ref names, in one query (a movement's `from` and `to`), or a 422
    naming the first field, in order, whose ref is malformed or unknown."""
    wanted = {field: parse_ref(ref, field) for field, ref in refs.items()}
    rows = session.scalars(_BY_REF, {"refs": list(set(wanted.values()))})
    found = {(holder.kind, holder.code): holder for holder in rows}
    for field, (kind, code) in wanted.items():
        if (kind, code) not in found:
            raise Invalid(f"unknown holder {kind}:{code}", field=field)
    return {field: found[key] for field, key in wanted.items()}


def lookup(session: Session, ref: str) -> Holder:
    """The holder `ref` names, or 404 (for holders named in a URL or query)."""
    kind, code = parse_ref(ref, "holder")
    holder = session.scalar(select(Holder).where(Holder.kind == kind, Holder.code == code))
    if holder is None:
        raise NotFound(f"no holder {kind}:{code}")
    return holder


def depot_holder_of(holder: Holder) -> Holder | None:
    """The depot that answers for stock at `holder`: itself, a unit's home depot, or for a
    transfer's transit account the origin depot (kept as the transit holder's home depot)."""
    if holder.kind == "depot":
        return holder
    if holder.kind in ("unit", "transit"):
        return holder.home_depot
    return None


def depot_of(holder: Holder) -> str | None:
    depot = depot_holder_of(holder)
    return depot.code if depot is not None else None


def answering_to(depot_ids: Iterable[int], holder: Any = Holder) -> ColumnElement[bool]:
    """In SQL: `holder` (the Holder entity or an alias of it) is one of the depots `depot_ids`,
    or a unit or transit account whose home is one: what `depot_holder_of` answers, for a query."""
    ids = sorted(depot_ids)
    return or_(
        and_(holder.kind == "depot", holder.id.in_(ids)),
        and_(holder.kind.in_(("unit", "transit")), holder.home_depot_id.in_(ids)),
    )
