"""`/api/v1/stocktakes`: open a stocktake of a depot, post what was counted, close it."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from ..domain.actors import Role
from ..services import stocktake_close, stocktakes
from ..services.lines import reference_from
from ..services.stocktake_close import StocktakeResult
from ..services.stocktakes import CountBatch, CountLine
from ..services.unit_of_work import UnitOfWork
from .auth import allow
from .context import write
from .fields import Marking

blp = Blueprint(
    "stocktakes",
    __name__,
    url_prefix="/api/v1/stocktakes",
    description="Physical counts of a depot, compared with its books",
)

MAX_LINES = 10_000  # per batch; post a large count as several batches


class StocktakeInSchema(Schema):
    depot = fields.String(required=True, metadata={"description": "depot code, e.g. D-NORTH"})


class StocktakeSchema(Schema):
    id = fields.UUID()
    depot = fields.String(attribute="depot.code")
    status = fields.String()
    opened_at = fields.AwareDateTime()
    opened_by = fields.String()


class CountLineSchema(Schema):
    """One of: `weapon_id`; `serial` (+ `manufacturer`, `item_type`); `lot_id` or `lot_number`
    (+ `item_type`) with `quantity`."""

    weapon_id = fields.UUID()
    serial = Marking()
    manufacturer = Marking()
    item_type = fields.String(validate=validate.Length(min=1, max=64))
    lot_id = fields.UUID()
    lot_number = Marking()
    # strict, as in movements: 2.9 or "7" rounds is an error, never silently 2 or 7
    quantity = fields.Integer(strict=True, validate=validate.Range(min=0, max=1_000_000_000))

    @validates_schema
    def one_form(self, data: dict[str, Any], **_: Any) -> None:
        forms = [n for n in ("weapon_id", "serial", "lot_id", "lot_number") if n in data]
        if len(forms) != 1:
            raise ValidationError(
                "give exactly one of weapon_id, serial, lot_id, lot_number"
                + (f" (got {', '.join(forms)})" if forms else ""),
                field_name="_line",
            )
        is_lot = forms[0] in ("lot_id", "lot_number")
        if is_lot and "quantity" not in data:
            raise ValidationError("a lot line needs the rounds counted", field_name="quantity")
        if not is_lot and "quantity" in data:
            raise ValidationError(
                "a weapon line counts one weapon; leave quantity out", field_name="quantity"
            )

    @post_load
    def to_line(self, data: dict[str, Any], **_: Any) -> CountLine:
        return reference_from(data)


class CountsInSchema(Schema):
    lines = fields.List(
        fields.Nested(CountLineSchema),
        required=True,
        validate=validate.Length(min=1, max=MAX_LINES),
    )


class ScannedSchema(Schema):
    serial = fields.String()
    manufacturer = fields.String(allow_none=True)
    item_type = fields.String(allow_none=True)


class CountBatchSchema(Schema):
    id = fields.UUID(attribute="stocktake.id")
    status = fields.String(attribute="stocktake.status")
    weapons = fields.Integer(metadata={"description": "weapon lines matched to the registry"})
    lots = fields.Integer(metadata={"description": "lot lines"})
    unknown_serials = fields.List(
        fields.Nested(ScannedSchema),
        metadata={"description": "scanned serials matching no registered weapon, kept as scanned"},
    )


class MissingWeaponSchema(Schema):
    weapon_id = fields.UUID(allow_none=True)
    serial = fields.String()
    manufacturer = fields.String(allow_none=True)
    item_type = fields.String(allow_none=True)


class UnexpectedWeaponSchema(MissingWeaponSchema):
    books = fields.String(
        allow_none=True,
        metadata={"description": "the holder the books place it with (null: unregistered)"},
    )


class LotVarianceSchema(Schema):
    lot_id = fields.UUID()
    lot_number = fields.String()
    item_type = fields.String()
    expected = fields.Integer()
    counted = fields.Integer()


class StocktakeResultSchema(Schema):
    id = fields.UUID(attribute="stocktake.id")
    depot = fields.String(attribute="stocktake.depot.code")
    status = fields.String(attribute="stocktake.status")
    closed_at = fields.AwareDateTime(attribute="stocktake.closed_at")
    expected = fields.Integer(metadata={"description": "weapons on the depot's books"})
    counted = fields.Integer(metadata={"description": "distinct weapons counted"})
    verified = fields.Integer(metadata={"description": "counted weapons recorded as verified"})
    missing = fields.List(fields.Nested(MissingWeaponSchema))
    unexpected = fields.List(fields.Nested(UnexpectedWeaponSchema))
    lot_variances = fields.List(fields.Nested(LotVarianceSchema))
    discrepancies = fields.List(fields.UUID(), metadata={"description": "discrepancies opened"})


@blp.route("")
class Stocktakes(MethodView):
    @allow(Role.ADMIN, Role.CLERK)
    @blp.arguments(StocktakeInSchema)
    @blp.response(201, StocktakeSchema)
    def post(self, args: dict[str, Any]) -> Response:
        """Open a stocktake of a depot (its clerks or an admin; one open stocktake per depot)"""
        return write(lambda uow: stocktakes.open_stocktake(uow, args["depot"]), StocktakeSchema())


@blp.route("/<uuid:stocktake_id>/counts")
class Counts(MethodView):
    @allow(Role.ADMIN, Role.CLERK)
    @blp.arguments(CountsInSchema)
    @blp.response(201, CountBatchSchema)
    def post(self, args: dict[str, Any], stocktake_id: uuid.UUID) -> Response:
        """Add a batch of counted lines (repeatable; up to 10,000 lines a batch)"""

        def count(uow: UnitOfWork) -> CountBatch:
            return stocktakes.add_counts(uow, stocktake_id, args["lines"])

        return write(count, CountBatchSchema())


@blp.route("/<uuid:stocktake_id>/close")
class Close(MethodView):
    @allow(Role.ADMIN, Role.CLERK)
    @blp.response(200, StocktakeResultSchema)
    def post(self, stocktake_id: uuid.UUID) -> Response:
        """Close: compare with the books, open discrepancies, record the counted weapons as
        physically verified"""

        def close(uow: UnitOfWork) -> StocktakeResult:
            return stocktake_close.close_stocktake(uow, stocktake_id)

        return write(close, StocktakeResultSchema(), status=200)
