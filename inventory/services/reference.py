"""Reference data: depots, units, parties (the holders admins enter) and item types."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.models import Holder, ItemType
from .errors import Conflict, Invalid, NotFound
from .unit_of_work import UnitOfWork


def find_holder(session: Session, kind: str, code: str) -> Holder | None:
    return session.scalar(select(Holder).where(Holder.kind == kind, Holder.code == code))


def get_holder(session: Session, kind: str, code: str) -> Holder:
    holder = find_holder(session, kind, code)
    if holder is None:
        raise NotFound(f"no {kind} {code!r}")
    return holder


def _add_holder(uow: UnitOfWork, kind: str, code: str, **fields: Any) -> Holder:
    if find_holder(uow.session, kind, code) is not None:
        raise Conflict(f"{kind} {code!r} already exists", errors={"code": [f"{code!r} is taken"]})
    holder = Holder(kind=kind, code=code, created_at=uow.now, **fields)
    uow.session.add(holder)
    uow.session.flush()
    described = {k: v.ref if isinstance(v, Holder) else v for k, v in fields.items()}
    uow.record(f"{kind}.create", f"{kind}:{code}", {"code": code, **described})
    return holder


def create_depot(uow: UnitOfWork, code: str, name: str, country: str | None = None) -> Holder:
    return _add_holder(uow, "depot", code, name=name, country=country)


def create_unit(uow: UnitOfWork, code: str, name: str, depot: str) -> Holder:
    home = find_holder(uow.session, "depot", depot)
    if home is None:
        raise Invalid(f"unknown depot {depot!r}", field="depot")
    return _add_holder(uow, "unit", code, name=name, home_depot=home)


def create_party(uow: UnitOfWork, code: str, name: str, country: str, kind: str) -> Holder:
    return _add_holder(uow, "party", code, name=name, country=country, party_kind=kind)


def create_item_type(uow: UnitOfWork, **fields: Any) -> ItemType:
    code = fields["code"]
    if uow.session.scalar(select(ItemType).where(ItemType.code == code)) is not None:
        raise Conflict(
            f"item type {code!r} already exists", errors={"code": [f"{code!r} is taken"]}
        )
    item_type = ItemType(created_at=uow.now, **fields)
    uow.session.add(item_type)
    uow.session.flush()
    uow.record("item_type.create", f"item_type:{code}", fields)
    return item_type


def weapon_type_codes(session: Session) -> list[str]:
    """The catalogue's weapon types, for choosing one in a search."""
    return list(
        session.scalars(
            select(ItemType.code).where(ItemType.category == "weapon").order_by(ItemType.code)
        )
    )
