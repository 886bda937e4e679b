"""`/api/v1/verifications`: end-use serial checks of weapons delivered to outside parties."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from ..clock import utcnow
from ..db.models import EndUseVerification
from ..domain.actors import Role
from ..services import verifications
from ..services.lines import WeaponRef
from ..services.verifications import CheckResult, VerificationView
from .auth import allow
from .context import db_session, write
from .fields import Marking, Timestamp
from .movements import MAX_LINES
from .pagination import PageArgs, keyset_page, page_of

blp = Blueprint(
    "verifications",
    __name__,
    url_prefix="/api/v1/verifications",
    description="End-use verifications of weapons delivered to outside parties",
)


class WeaponRefSchema(Schema):
    """`weapon_id`, or `serial` (+ `manufacturer`, `item_type` when the serial is ambiguous)."""

    weapon_id = fields.UUID()
    serial = Marking()
    manufacturer = Marking()
    item_type = fields.String()

    @validates_schema
    def one_form(self, data: dict[str, Any], **_: Any) -> None:
        if ("weapon_id" in data) == ("serial" in data):
            raise ValidationError("give exactly one of weapon_id, serial", field_name="_weapon")

    @post_load
    def to_ref(self, data: dict[str, Any], **_: Any) -> WeaponRef:
        return WeaponRef(**data)


class CheckResultInSchema(Schema):
    checked_at = Timestamp(required=True)
    seen = fields.List(
        fields.Nested(WeaponRefSchema), load_default=list, validate=validate.Length(max=MAX_LINES)
    )
    not_seen = fields.List(
        fields.Nested(WeaponRefSchema), load_default=list, validate=validate.Length(max=MAX_LINES)
    )
    note = fields.String(validate=validate.Length(max=4000))

    @post_load
    def to_result(self, data: dict[str, Any], **_: Any) -> CheckResult:
        return CheckResult(**data)


class VerificationSchema(Schema):
    id = fields.UUID(attribute="verification.id")
    transfer_id = fields.UUID(attribute="verification.transfer_id")
    number = fields.Integer(
        attribute="verification.number", metadata={"description": "1 = the initial check"}
    )
    status = fields.String(metadata={"description": "due, overdue or done"})
    due_at = fields.AwareDateTime(attribute="verification.due_at")
    overdue_by_seconds = fields.Integer(allow_none=True)
    done_at = fields.AwareDateTime(attribute="verification.done_at", allow_none=True)
    recorded_by = fields.String(attribute="verification.recorded_by", allow_none=True)
    note = fields.String(attribute="verification.note", allow_none=True)
    party = fields.String(attribute="transfer.to_holder.ref")
    end_user_ref = fields.String(attribute="transfer.end_user_ref", allow_none=True)
    origin = fields.String(attribute="transfer.from_holder.ref")


class NextVerificationSchema(Schema):
    id = fields.UUID()
    number = fields.Integer()
    due_at = fields.AwareDateTime()


class RecordedCheckSchema(Schema):
    verification = fields.Nested(VerificationSchema, attribute="view")
    seen = fields.Integer()
    not_seen = fields.Integer()
    discrepancies = fields.List(
        fields.UUID(), metadata={"description": "end_use_missing discrepancies opened"}
    )
    next = fields.Nested(NextVerificationSchema, allow_none=True)


class VerificationFilterSchema(PageArgs):
    status = fields.String(validate=validate.OneOf(verifications.STATUSES))


@blp.route("")
class Verifications(MethodView):
    @allow(Role.MONITOR, Role.AUDITOR, Role.ADMIN)
    @blp.arguments(VerificationFilterSchema, location="query")
    @blp.response(200, page_of(VerificationSchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List end-use verifications: due, overdue (past due, not recorded) or done"""
        now, session = utcnow(), db_session()
        stmt = verifications.verifications_query(session, status=args.pop("status", None), now=now)
        page = keyset_page(session, stmt, EndUseVerification.id, args)
        page["items"] = verifications.views_of(session, page["items"], now)
        return page


@blp.route("/<uuid:verification_id>")
class VerificationById(MethodView):
    @allow(Role.MONITOR, Role.AUDITOR, Role.ADMIN)
    @blp.response(200, VerificationSchema)
    def get(self, verification_id: uuid.UUID) -> VerificationView:
        """One end-use verification"""
        return verifications.get_verification(db_session(), verification_id, utcnow())


@blp.route("/<uuid:verification_id>/result")
class VerificationResult(MethodView):
    @allow(Role.MONITOR, Role.ADMIN)
    @blp.arguments(CheckResultInSchema)
    @blp.response(201, RecordedCheckSchema)
    def post(self, result: CheckResult, verification_id: uuid.UUID) -> Response:
        """Record which delivered weapons were seen; every delivered weapon must be listed as
        seen or not_seen. Each one not seen opens `end_use_missing`; the next check is
        scheduled `end_use_interval` after this one."""
        return write(
            lambda uow: verifications.record_result(uow, verification_id, result),
            RecordedCheckSchema(),
        )
