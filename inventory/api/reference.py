"""Reference data endpoints: depots, units, parties and item types. Admins write; everyone reads."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from ..db.models import Holder, ItemType
from ..domain.actors import Role
from ..services import reference
from ..services.errors import NotFound
from .auth import ALL_ROLES, allow
from .context import db_session, write
from .pagination import PageArgs, keyset_page, page_of

CODE = validate.Regexp(
    r"^[A-Z0-9][A-Z0-9._-]{0,63}$",
    error="must be an upper-case identifier: A-Z, 0-9, '.', '_' or '-', at most 64 characters",
)
NAME = validate.Length(min=1, max=200)

blp = Blueprint(
    "reference", __name__, url_prefix="/api/v1", description="Depots, units, parties and item types"
)


class DepotSchema(Schema):
    code = fields.String(required=True, validate=CODE)
    name = fields.String(required=True, validate=NAME)
    country = fields.String(allow_none=True, validate=validate.Length(max=64))


class UnitSchema(Schema):
    code = fields.String(required=True, validate=CODE)
    name = fields.String(required=True, validate=NAME)
    depot = fields.Function(
        lambda unit: unit.home_depot.code,
        deserialize=str,
        required=True,
        metadata={"description": "code of the unit's home depot"},
    )


class PartySchema(Schema):
    code = fields.String(required=True, validate=CODE)
    name = fields.String(required=True, validate=NAME)
    country = fields.String(required=True, validate=validate.Length(min=1, max=64))
    kind = fields.String(
        required=True,
        attribute="party_kind",
        validate=validate.OneOf(["supplier", "recipient", "manufacturer", "other"]),
    )


class ItemTypeSchema(Schema):
    code = fields.String(required=True, validate=CODE)
    category = fields.String(required=True, validate=validate.OneOf(["weapon", "ammunition"]))
    name = fields.String(required=True, validate=NAME)
    calibre = fields.String(allow_none=True, validate=validate.Length(max=64))
    model = fields.String(allow_none=True, validate=validate.Length(max=200))


def _holder_page(kind: str, args: dict[str, Any]) -> dict[str, Any]:
    stmt = select(Holder).where(Holder.kind == kind)
    return keyset_page(db_session(), stmt, Holder.code, args)


@blp.route("/depots")
class Depots(MethodView):
    @allow(*ALL_ROLES)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_of(DepotSchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List depots"""
        return _holder_page("depot", args)

    @allow(Role.ADMIN)
    @blp.arguments(DepotSchema)
    @blp.response(201, DepotSchema)
    def post(self, data: dict[str, Any]) -> Response:
        """Register a depot"""
        return write(lambda uow: reference.create_depot(uow, **data), DepotSchema())


@blp.route("/depots/<code>")
class DepotByCode(MethodView):
    @allow(*ALL_ROLES)
    @blp.response(200, DepotSchema)
    def get(self, code: str) -> Holder:
        """One depot"""
        return reference.get_holder(db_session(), "depot", code)


@blp.route("/units")
class Units(MethodView):
    @allow(*ALL_ROLES)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_of(UnitSchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List units"""
        return _holder_page("unit", args)

    @allow(Role.ADMIN)
    @blp.arguments(UnitSchema)
    @blp.response(201, UnitSchema)
    def post(self, data: dict[str, Any]) -> Response:
        """Register a unit with its home depot"""
        return write(lambda uow: reference.create_unit(uow, **data), UnitSchema())


@blp.route("/parties")
class Parties(MethodView):
    @allow(*ALL_ROLES)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_of(PartySchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List outside parties"""
        return _holder_page("party", args)

    @allow(Role.ADMIN)
    @blp.arguments(PartySchema)
    @blp.response(201, PartySchema)
    def post(self, data: dict[str, Any]) -> Response:
        """Register an outside party: another state, a partner force, a manufacturer"""
        data["kind"] = data.pop("party_kind")
        return write(lambda uow: reference.create_party(uow, **data), PartySchema())


@blp.route("/item-types")
class ItemTypes(MethodView):
    @allow(*ALL_ROLES)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_of(ItemTypeSchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List item types"""
        return keyset_page(db_session(), select(ItemType), ItemType.code, args)

    @allow(Role.ADMIN)
    @blp.arguments(ItemTypeSchema)
    @blp.response(201, ItemTypeSchema)
    def post(self, data: dict[str, Any]) -> Response:
        """Add an item type to the catalogue"""
        return write(lambda uow: reference.create_item_type(uow, **data), ItemTypeSchema())


@blp.route("/item-types/<code>")
class ItemTypeByCode(MethodView):
    @allow(*ALL_ROLES)
    @blp.response(200, ItemTypeSchema)
    def get(self, code: str) -> ItemType:
        """One item type"""
        item_type = db_session().scalar(select(ItemType).where(ItemType.code == code))
        if item_type is None:
            raise NotFound(f"no item type {code!r}")
        return item_type
