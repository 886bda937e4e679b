"""`/api/v1/transfers`: dispatch, receive or cancel two-phase transfers, and follow them."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, post_load, validate

from ..clock import utcnow
from ..db.models import Transfer
from ..db.models.oversight import TRANSFER_STATUSES
from ..domain.actors import Role
from ..services import transfer_receipts, transfers
from ..services.transfer_receipts import Receipt
from ..services.transfers import TransferOrder, TransferView
from ..services.unit_of_work import UnitOfWork
from .auth import ALL_ROLES, allow, current_actor
from .context import db_session, write
from .fields import Timestamp
from .movements import MAX_LINES, TEXT, LineOutSchema, LineSchema
from .pagination import PageArgs, keyset_page, page_of

blp = Blueprint(
    "transfers",
    __name__,
    url_prefix="/api/v1/transfers",
    description="Two-phase transfers between depots and to outside parties",
)

NOTE = validate.Length(max=2000)


class TransferInSchema(Schema):
    from_ = fields.String(
        data_key="from", required=True, metadata={"description": "the origin, depot:CODE"}
    )
    to = fields.String(required=True, metadata={"description": "depot:CODE or party:CODE"})
    expected_by = Timestamp(required=True)
    document_ref = fields.String(required=True, validate=TEXT)
    end_user_ref = fields.String(
        validate=TEXT, metadata={"description": "required when `to` is a party"}
    )
    note = fields.String(validate=NOTE)
    lines = fields.List(
        fields.Nested(LineSchema),
        required=True,
        validate=validate.Length(min=1, max=MAX_LINES),
        metadata={"description": "the manifest: weapon_id/serial or lot_id/lot_number+quantity"},
    )

    @post_load
    def to_order(self, data: dict[str, Any], **_: Any) -> TransferOrder:
        return TransferOrder(source=data.pop("from_"), destination=data.pop("to"), **data)


class ReceiptInSchema(Schema):
    received_at = Timestamp(required=True)
    lines = fields.List(
        fields.Nested(LineSchema),
        load_default=list,
        validate=validate.Length(max=MAX_LINES),
        metadata={"description": "what physically arrived (empty: nothing arrived)"},
    )
    delivery_verification_ref = fields.String(
        validate=TEXT, metadata={"description": "required to confirm delivery to a party"}
    )
    note = fields.String(validate=NOTE)

    @post_load
    def to_receipt(self, data: dict[str, Any], **_: Any) -> Receipt:
        return Receipt(**data)


class CancelInSchema(Schema):
    note = fields.String(validate=NOTE)


class VarianceSchema(Schema):
    discrepancy_id = fields.UUID(allow_none=True)
    summary = fields.String()
    weapon_id = fields.UUID(allow_none=True)
    serial = fields.String(allow_none=True)
    manufacturer = fields.String(allow_none=True)
    item_type = fields.String(allow_none=True)
    lot_id = fields.UUID(allow_none=True)
    lot_number = fields.String(allow_none=True)
    quantity = fields.Integer(allow_none=True)


class TransferSummarySchema(Schema):
    id = fields.UUID(attribute="transfer.id")
    status = fields.String(attribute="transfer.status")
    from_ = fields.String(data_key="from", attribute="transfer.from_holder.ref")
    to = fields.String(attribute="transfer.to_holder.ref")
    transit = fields.String(
        attribute="transfer.transit_holder.ref",
        metadata={"description": "the transfer's own transit holder, answering to the origin"},
    )
    expected_by = fields.AwareDateTime(attribute="transfer.expected_by")
    dispatched_at = fields.AwareDateTime(attribute="transfer.dispatched_at")
    received_at = fields.AwareDateTime(attribute="transfer.received_at", allow_none=True)
    document_ref = fields.String(attribute="transfer.document_ref", allow_none=True)
    end_user_ref = fields.String(attribute="transfer.end_user_ref", allow_none=True)
    delivery_verification_ref = fields.String(
        attribute="transfer.delivery_verification_ref", allow_none=True
    )
    created_by = fields.String(attribute="transfer.created_by")
    dispatch_movement_id = fields.UUID(attribute="transfer.dispatch_movement_id")
    receipt_movement_id = fields.UUID(attribute="transfer.receipt_movement_id", allow_none=True)
    age_seconds = fields.Integer(metadata={"description": "now - dispatched_at"})
    overdue_by_seconds = fields.Integer(
        allow_none=True, metadata={"description": "now - expected_by while still in transit"}
    )


class TransferSchema(TransferSummarySchema):
    lines = fields.List(fields.Nested(LineOutSchema), metadata={"description": "the manifest"})
    received = fields.List(fields.Nested(LineOutSchema))
    shortfall = fields.List(fields.Nested(VarianceSchema))
    surplus = fields.List(fields.Nested(VarianceSchema))
    audit_seq = fields.Integer(allow_none=True)


class TransferFilterSchema(PageArgs):
    status = fields.String(validate=validate.OneOf(TRANSFER_STATUSES))
    overdue = fields.Boolean(
        load_default=False, metadata={"description": "only those in transit past expected_by"}
    )


def present(view: TransferView, uow: UnitOfWork) -> Any:
    view.audit_seq = uow.audit_seq
    return TransferSchema().dump(view)


@blp.route("")
class Transfers(MethodView):
    @allow(*ALL_ROLES)
    @blp.arguments(TransferFilterSchema, location="query")
    @blp.response(200, page_of(TransferSummarySchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List transfers with their age; clerks see those from or to their depots"""
        now = utcnow()
        stmt = transfers.transfers_query(
            db_session(),
            current_actor(),
            status=args.pop("status", None),
            overdue=args.pop("overdue"),
            now=now,
        )
        page = keyset_page(db_session(), stmt, Transfer.id, args)
        page["items"] = [TransferView(t, now) for t in page["items"]]
        return page

    @allow(Role.ADMIN, Role.CLERK)
    @blp.arguments(TransferInSchema)
    @blp.response(201, TransferSchema)
    def post(self, order: TransferOrder) -> Response:
        """Dispatch: move the manifest from the origin depot into the transfer's transit holder"""
        return write(lambda uow: transfers.dispatch(uow, order), present)


@blp.route("/<uuid:transfer_id>")
class TransferById(MethodView):
    @allow(*ALL_ROLES)
    @blp.response(200, TransferSchema)
    def get(self, transfer_id: uuid.UUID) -> TransferView:
        """One transfer with its manifest, what was received, and any shortfall or surplus"""
        return transfers.get_transfer(db_session(), current_actor(), transfer_id, utcnow())


@blp.route("/<uuid:transfer_id>/receipt")
class TransferReceipt(MethodView):
    @allow(Role.ADMIN, Role.CLERK, Role.MONITOR)
    @blp.arguments(ReceiptInSchema)
    @blp.response(201, TransferSchema)
    def post(self, receipt: Receipt, transfer_id: uuid.UUID) -> Response:
        """Receive: list what physically arrived; this closes the transfer (one receipt only).
        A depot's clerk receives into their depot; delivery to a party is confirmed by an admin
        or a monitor with `delivery_verification_ref`."""
        return write(lambda uow: transfer_receipts.receive(uow, transfer_id, receipt), present)


@blp.route("/<uuid:transfer_id>/cancel")
class TransferCancel(MethodView):
    @allow(Role.ADMIN, Role.CLERK)
    @blp.arguments(CancelInSchema)
    @blp.response(200, TransferSchema)
    def post(self, args: dict[str, Any], transfer_id: uuid.UUID) -> Response:
        """Cancel before any receipt: everything still in transit returns to the origin"""
        note = args.get("note")
        return write(lambda uow: transfers.cancel(uow, transfer_id, note), present, status=200)
