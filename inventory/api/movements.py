"""`/api/v1/movements`: post and read the custody ledger's journal."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from ..db.models import Movement
from ..db.models.ledger import MARKING_STATUSES, ORIGINS
from ..domain.actors import Role
from ..domain.movements import Kind
from ..services import custody, ledger
from ..services.ledger import MovementRequest, PostedLine, PostedMovement
from ..services.lines import (
    Line,
    LotRegistration,
    WeaponRef,
    WeaponRegistration,
    reference_from,
)
from ..services.unit_of_work import UnitOfWork
from .auth import ALL_ROLES, allow, current_actor
from .context import db_session, write
from .fields import Marking, Timestamp
from .pagination import AscendingPageArgs, keyset_page, page_of

blp = Blueprint(
    "movements",
    __name__,
    url_prefix="/api/v1/movements",
    description="The custody ledger's journal",
)

MAX_LINES = 10_000
POSTABLE = [str(k) for k in Kind if k not in (Kind.DISPATCH, Kind.RECEIVE, Kind.CANCEL)]
YEAR = validate.Range(min=1800, max=2100)
TEXT = validate.Length(min=1, max=200)


class WeaponRegistrationSchema(Schema):
    serial = Marking(metadata={"description": "required unless marking_status is obliterated"})
    manufacturer = Marking(required=True)
    item_type = fields.String(required=True)
    marking_status = fields.String(load_default="intact", validate=validate.OneOf(MARKING_STATUSES))
    origin = fields.String(validate=validate.OneOf(ORIGINS))
    year_of_manufacture = fields.Integer(strict=True, validate=YEAR)
    country_of_manufacture = fields.String(validate=validate.Length(max=64))
    import_marks = fields.String(validate=validate.Length(max=200))

    @validates_schema
    def serial_or_obliterated(self, data: dict[str, Any], **_: Any) -> None:
        if not data.get("serial") and data.get("marking_status") != "obliterated":
            raise ValidationError(
                "every weapon is registered by its serial; if the serial is obliterated, say "
                "marking_status: obliterated and the registry assigns one",
                field_name="serial",
            )


class LotRegistrationSchema(Schema):
    lot_number = Marking(required=True)
    item_type = fields.String(required=True)
    manufacturer = Marking()
    year_of_manufacture = fields.Integer(strict=True, validate=YEAR)


class LineSchema(Schema):
    """One of: `weapon` (register), `weapon_id` or `serial` (+ `manufacturer`, `item_type`),
    `lot` + `quantity` (register), `lot_id` or `lot_number` (+ `item_type`) + `quantity`."""

    weapon = fields.Nested(WeaponRegistrationSchema)
    lot = fields.Nested(LotRegistrationSchema)
    weapon_id = fields.UUID()
    serial = Marking()
    manufacturer = Marking()
    item_type = fields.String()
    lot_id = fields.UUID()
    lot_number = Marking()
    # strict: 1.5 rounds is an error, never silently 1
    quantity = fields.Integer(strict=True, validate=validate.Range(min=1, max=1_000_000_000))

    @validates_schema
    def one_form(self, data: dict[str, Any], **_: Any) -> None:
        forms = [
            name
            for name in ("weapon", "lot", "weapon_id", "serial", "lot_id", "lot_number")
            if name in data
        ]
        if len(forms) != 1:
            raise ValidationError(
                "give exactly one of weapon, weapon_id, serial, lot, lot_id, lot_number"
                + (f" (got {', '.join(forms)})" if forms else ""),
                field_name="_line",
            )
        is_lot = forms[0] in ("lot", "lot_id", "lot_number")
        if is_lot and "quantity" not in data:
            raise ValidationError("a lot line needs a quantity of rounds", field_name="quantity")
        if not is_lot and "quantity" in data:
            raise ValidationError(
                "a weapon line moves one weapon; leave quantity out", field_name="quantity"
            )

    @post_load
    def to_line(self, data: dict[str, Any], **_: Any) -> Line:
        if "weapon" in data:
            return WeaponRegistration(**data["weapon"])
        if "lot" in data:
            return LotRegistration(quantity=data["quantity"], **data["lot"])
        return reference_from(data)


class LineList(fields.List):
    """`LineSchema` lines. A line that is only `{"weapon_id": "<uuid>"}`, as in most issues and
    returns, is read directly: marshmallow's nested load costs about 50 µs a line, most of a
    1,000-line movement's time. Anything else, including every line with an error, takes the
    schema, so the result and the messages are the schema's either way."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(fields.Nested(LineSchema), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any]:
        if isinstance(value, list):
            try:
                return [WeaponRef(weapon_id=uuid.UUID(_bare_weapon_id(line))) for line in value]
            except (TypeError, ValueError):
                pass
        return super()._deserialize(value, attr, data, **kwargs)


def _bare_weapon_id(line: Any) -> str:
    if type(line) is not dict or len(line) != 1 or type(line.get("weapon_id")) is not str:
        raise TypeError("not a bare weapon_id line")
    return line["weapon_id"]


class MovementInSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(POSTABLE))
    from_ = fields.String(data_key="from", metadata={"description": "holder, e.g. depot:D-NORTH"})
    to = fields.String(
        metadata={"description": "holder; implied for loss, expenditure, destruction"}
    )
    occurred_at = Timestamp(required=True)
    document_ref = fields.String(validate=TEXT)
    due_back_at = Timestamp()
    case_ref = fields.String(validate=TEXT)
    reason = fields.String(validate=validate.Length(min=1, max=500))
    certificate_ref = fields.String(validate=TEXT)
    reverses = fields.UUID()
    note = fields.String(validate=validate.Length(max=2000))
    lines = LineList(load_default=list, validate=validate.Length(max=MAX_LINES))

    @post_load
    def to_request(self, data: dict[str, Any], **_: Any) -> MovementRequest:
        kind = Kind(data.pop("kind"))
        if kind is not Kind.REVERSAL and not data["lines"]:
            raise ValidationError("a movement carries at least one line", field_name="lines")
        return MovementRequest(
            kind=kind, source=data.pop("from_", None), destination=data.pop("to", None), **data
        )


class LineOutSchema(Schema):
    line_no = fields.Integer()
    weapon_id = fields.UUID(attribute="weapon.id", allow_none=True)
    serial = fields.String(attribute="weapon.serial", allow_none=True)
    manufacturer = fields.String(attribute="weapon.manufacturer", allow_none=True)
    item_type = fields.Function(lambda line: (line.weapon or line.lot).item_type)
    lot_id = fields.UUID(attribute="lot.id", allow_none=True)
    lot_number = fields.String(attribute="lot.lot_number", allow_none=True)
    quantity = fields.Integer()
    registers = fields.Boolean()


class MovementOutSchema(Schema):
    id = fields.UUID(attribute="movement.id")
    kind = fields.String(attribute="movement.kind")
    from_ = fields.String(data_key="from", attribute="movement.from_holder.ref")
    to = fields.String(attribute="movement.to_holder.ref")
    occurred_at = fields.AwareDateTime(attribute="movement.occurred_at")
    recorded_at = fields.AwareDateTime(attribute="movement.recorded_at")
    actor = fields.String(attribute="movement.actor")
    document_ref = fields.String(attribute="movement.document_ref", allow_none=True)
    due_back_at = fields.AwareDateTime(attribute="movement.due_back_at", allow_none=True)
    case_ref = fields.String(attribute="movement.case_ref", allow_none=True)
    reason = fields.String(attribute="movement.reason", allow_none=True)
    certificate_ref = fields.String(attribute="movement.certificate_ref", allow_none=True)
    reverses = fields.UUID(attribute="movement.reverses", allow_none=True)
    transfer_id = fields.UUID(attribute="movement.transfer_id", allow_none=True)
    note = fields.String(attribute="movement.note", allow_none=True)
    late_entry = fields.Boolean(attribute="movement.late_entry")
    audit_seq = fields.Integer(allow_none=True)
    lines = fields.List(fields.Nested(LineOutSchema))


class MovementSummarySchema(Schema):
    id = fields.UUID()
    kind = fields.String()
    from_ = fields.String(data_key="from", attribute="from_holder.ref")
    to = fields.String(attribute="to_holder.ref")
    occurred_at = fields.AwareDateTime()
    recorded_at = fields.AwareDateTime()
    actor = fields.String()
    document_ref = fields.String(allow_none=True)
    reverses = fields.UUID(allow_none=True)
    late_entry = fields.Boolean()


class MovementFilterSchema(AscendingPageArgs):
    holder = fields.String()
    kind = fields.String(validate=validate.OneOf([str(k) for k in Kind]))
    since = Timestamp()
    until = Timestamp()


_HEADER = MovementOutSchema(exclude=("lines",))
# One instance for every request: given the class, webargs builds a schema per request (it
# deep-copies every declared field), which cost more than loading a one-line movement.
MOVEMENT_IN = MovementInSchema()


def present(posted: PostedMovement, uow: UnitOfWork) -> Any:
    """The 201 body, as MovementOutSchema documents it. Lines are written directly: dumping
    10,000 of them through marshmallow costs about a second."""
    posted.audit_seq = uow.audit_seq
    header: dict[str, Any] = _HEADER.dump(posted)
    return {**header, "lines": [_line_json(line) for line in posted.lines]}


def _line_json(line: PostedLine) -> dict[str, Any]:
    """A line as LineOutSchema dumps it: weapon keys for a weapon line, lot keys for a lot."""
    body: dict[str, Any] = {"line_no": line.line_no}
    if line.weapon is not None:
        weapon = line.weapon
        body |= {
            "weapon_id": str(weapon.id),
            "serial": weapon.serial,
            "manufacturer": weapon.manufacturer,
            "item_type": weapon.item_type,
        }
    elif line.lot is not None:
        body |= {
            "item_type": line.lot.item_type,
            "lot_id": str(line.lot.id),
            "lot_number": line.lot.lot_number,
        }
    return body | {"quantity": line.quantity, "registers": line.registers}


@blp.route("")
class Movements(MethodView):
    @allow(*ALL_ROLES)
    @blp.arguments(MovementFilterSchema, location="query")
    @blp.response(200, page_of(MovementSummarySchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List movements in the order they were recorded, oldest first (`order=desc` for
        newest first); clerks see those touching their depots"""
        filters = {k: args.pop(k) for k in ("holder", "kind", "since", "until") if k in args}
        stmt = custody.movements_query(db_session(), current_actor(), **filters)
        return keyset_page(db_session(), stmt, Movement.seq, args)

    @allow(Role.ADMIN, Role.CLERK)
    @blp.arguments(MOVEMENT_IN)
    @blp.response(201, MovementOutSchema)
    def post(self, request: MovementRequest) -> Response:
        """Post a movement: all of its lines, or (on any bad line) none of them"""
        return write(lambda uow: ledger.post_movement(uow, request), present)


@blp.route("/<uuid:movement_id>")
class MovementById(MethodView):
    @allow(*ALL_ROLES)
    @blp.response(200, MovementOutSchema)
    def get(self, movement_id: uuid.UUID) -> PostedMovement:
        """One movement with its lines"""
        return custody.get_movement(db_session(), current_actor(), movement_id)
