"""Stock: weapons, lots, chains of custody, and holdings now or as of any past time."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from ..db.models import Lot, Weapon
from ..domain.movements import STATUS_BY_HOLDER_KIND, status_of
from ..services import custody
from .auth import ALL_ROLES, allow, current_actor
from .context import db_session, read_session
from .fields import Marking, Timestamp
from .pagination import AscendingPageArgs, PageArgs, keyset_page, page_of

blp = Blueprint("stock", __name__, url_prefix="/api/v1", description="Weapons, lots, holdings")


class WeaponSchema(Schema):
    id = fields.UUID()
    serial = fields.String()
    manufacturer = fields.String()
    item_type = fields.String(attribute="item_type.code")
    holder = fields.String(attribute="holding.holder.ref")
    status = fields.Function(lambda weapon: status_of(weapon.holding.holder.kind))
    marking_status = fields.String()
    origin = fields.String()
    year_of_manufacture = fields.Integer(allow_none=True)
    country_of_manufacture = fields.String(allow_none=True)
    import_marks = fields.String(allow_none=True)


class WeaponFilterSchema(PageArgs):
    serial = Marking()
    manufacturer = Marking()
    holder = fields.String(metadata={"description": "kind:code, e.g. depot:D-NORTH"})
    status = fields.String(validate=validate.OneOf(sorted(set(STATUS_BY_HOLDER_KIND.values()))))


class CustodyStepSchema(Schema):
    movement_id = fields.UUID()
    kind = fields.String()
    from_ = fields.String(data_key="from", attribute="source")
    to = fields.String(attribute="destination")
    occurred_at = fields.AwareDateTime()
    recorded_at = fields.AwareDateTime()
    actor = fields.String()
    document_ref = fields.String(allow_none=True)
    quantity = fields.Integer()


class LotBalanceSchema(Schema):
    holder = fields.String()
    quantity = fields.Integer()


class LotSchema(Schema):
    id = fields.UUID()
    lot_number = fields.String()
    item_type = fields.String(attribute="item_type.code")
    manufacturer = fields.String(allow_none=True)
    year_of_manufacture = fields.Integer(allow_none=True)


class LotDetailSchema(LotSchema):
    balances = fields.List(fields.Nested(LotBalanceSchema))


class LotFilterSchema(PageArgs):
    lot_number = Marking()


class LotQuantitySchema(Schema):
    lot_id = fields.UUID()
    lot_number = fields.String()
    item_type = fields.String()
    quantity = fields.Integer()


class HoldingsSchema(Schema):
    holder = fields.String()
    as_of = fields.AwareDateTime(allow_none=True)
    weapons = fields.List(fields.Nested(WeaponSchema))
    lots = fields.List(fields.Nested(LotQuantitySchema))


class HoldingsArgs(Schema):
    holder = fields.String(
        required=True, validate=validate.Length(min=1), metadata={"description": "kind:code"}
    )
    as_of = Timestamp(metadata={"description": "the books at that time; default now"})


def history_page(history: Any, args: dict[str, Any]) -> dict[str, Any]:
    page = keyset_page(read_session(), history, custody.HISTORY_KEY, args, rows=True)
    return {**page, "items": custody.steps(page["items"])}


@blp.route("/weapons")
class Weapons(MethodView):
    @allow(*ALL_ROLES)
    @blp.arguments(WeaponFilterSchema, location="query")
    @blp.response(200, page_of(WeaponSchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Find weapons by serial, manufacturer, holder or status"""
        filters = {
            k: args.pop(k) for k in ("serial", "manufacturer", "holder", "status") if k in args
        }
        stmt = custody.weapons_query(db_session(), current_actor(), **filters)
        return keyset_page(db_session(), stmt, Weapon.id, args)


@blp.route("/weapons/<uuid:weapon_id>")
class WeaponById(MethodView):
    @allow(*ALL_ROLES)
    @blp.response(200, WeaponSchema)
    def get(self, weapon_id: uuid.UUID) -> Weapon:
        """One weapon, with its current holder and status"""
        return custody.get_weapon(db_session(), current_actor(), weapon_id)


@blp.route("/weapons/<uuid:weapon_id>/history")
class WeaponHistory(MethodView):
    @allow(*ALL_ROLES)
    @blp.arguments(AscendingPageArgs, location="query")
    @blp.response(200, page_of(CustodyStepSchema))
    def get(self, args: dict[str, Any], weapon_id: uuid.UUID) -> dict[str, Any]:
        """The weapon's chain of custody, oldest first (`order=desc` for newest first)"""
        history = custody.weapon_history(read_session(), current_actor(), weapon_id)
        return history_page(history, args)


@blp.route("/lots")
class Lots(MethodView):
    @allow(*ALL_ROLES)
    @blp.arguments(LotFilterSchema, location="query")
    @blp.response(200, page_of(LotSchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Find ammunition lots"""
        stmt = custody.lots_query(db_session(), args.pop("lot_number", None))
        return keyset_page(db_session(), stmt, Lot.id, args)


@blp.route("/lots/<uuid:lot_id>")
class LotById(MethodView):
    @allow(*ALL_ROLES)
    @blp.response(200, LotDetailSchema)
    def get(self, lot_id: uuid.UUID) -> dict[str, Any]:
        """One lot, with the rounds each holder has (a clerk sees their depots' balances)"""
        lot, balances = custody.get_lot(db_session(), current_actor(), lot_id)
        return {
            "id": lot.id,
            "lot_number": lot.lot_number,
            "item_type": lot.item_type,
            "manufacturer": lot.manufacturer,
            "year_of_manufacture": lot.year_of_manufacture,
            "balances": balances,
        }


@blp.route("/lots/<uuid:lot_id>/history")
class LotHistory(MethodView):
    @allow(*ALL_ROLES)
    @blp.arguments(AscendingPageArgs, location="query")
    @blp.response(200, page_of(CustodyStepSchema))
    def get(self, args: dict[str, Any], lot_id: uuid.UUID) -> dict[str, Any]:
        """Every movement of the lot, oldest first (`order=desc` for newest first)"""
        return history_page(custody.lot_history(read_session(), current_actor(), lot_id), args)


@blp.route("/holdings")
class Holdings(MethodView):
    @allow(*ALL_ROLES)
    @blp.arguments(HoldingsArgs, location="query")
    @blp.response(200, HoldingsSchema)
    def get(self, args: dict[str, Any]) -> custody.Holdings:
        """What a holder holds now, or held at `as_of` according to the books then"""
        return custody.holdings_of(db_session(), current_actor(), args["holder"], args.get("as_of"))
