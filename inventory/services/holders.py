"""Holders as the API writes them (`kind:code`), and the depot that answers for each."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    Table,
    and_,
    bindparam,
    func,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from ..db.engine import rows_of
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


_HOLDERS: Table = Holder.__table__  # type: ignore[assignment]
_ATTRIBUTES = [column.key for column in _HOLDERS.c]


# Built once per dialect: every movement resolves its `from` and `to` with it, as plain rows.
@functools.cache
def _by_refs(dialect: str) -> Select[Any]:
    pair = tuple_(_HOLDERS.c.kind, _HOLDERS.c.code)
    if dialect != "postgresql":
        return select(_HOLDERS).where(pair.in_(bindparam("refs", expanding=True)))
    kinds, codes = (bindparam(name, type_=ARRAY(String())) for name in ("kinds", "codes"))
    return select(_HOLDERS).where(pair.in_(select(func.unnest(kinds), func.unnest(codes))))


def _rows_by_refs(session: Session, pairs: list[tuple[str, str]]) -> list[Any]:
    """The holders rows named by (kind, code) `pairs`, in one query."""
    dialect = session.get_bind().dialect.name
    if dialect != "postgresql":
        return rows_of(session, _by_refs(dialect), {"refs": pairs})
    kinds, codes = [kind for kind, _ in pairs], [code for _, code in pairs]
    return rows_of(session, _by_refs(dialect), {"kinds": kinds, "codes": codes})


def resolve_many(session: Session, refs: dict[str, str]) -> dict[str, Holder]:
    """The holder each field's ref names, in one query (a movement's `from` and `to`), or a 422
    naming the first field, in order, whose ref is malformed or unknown."""
    wanted = {field: parse_ref(ref, field) for field, ref in refs.items()}
    rows = _rows_by_refs(session, sorted(set(wanted.values())))
    found = {(holder.kind, holder.code): holder for holder in _held(session, rows)}
    for field, (kind, code) in wanted.items():
        if (kind, code) not in found:
            raise Invalid(f"unknown holder {kind}:{code}", field=field)
    return {field: found[key] for field, key in wanted.items()}


def _held(session: Session, rows: list[Any]) -> list[Holder]:
    """The holders `rows` are, as the session's own: the instance it holds already, else one
    made from the row as a query would have loaded it (ORM loading cost twice the query itself;
    holders are never updated). A unit's home depot comes from the session when it is there (a
    unit's movements name its depot too), else loads when asked for."""
    made, held = [], []
    for row in rows:
        values = dict(zip(_ATTRIBUTES, row, strict=True))
        holder = _in_session(session, values["id"])
        if holder is None:
            holder = Holder(**values)
            make_transient_to_detached(holder)
            session.add(holder)
            made.append(holder)
        held.append(holder)
    for holder in made:
        if holder.home_depot_id is not None:
            home = _in_session(session, holder.home_depot_id)
            if home is not None:
                set_committed_value(holder, "home_depot", home)
    return held


def _in_session(session: Session, holder_id: int) -> Holder | None:
    return cast(Holder | None, session.identity_map.get(Session.identity_key(Holder, holder_id)))


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
