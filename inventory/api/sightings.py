"""`/api/v1/sightings` and `/api/v1/trace`: weapons found outside custody, and where the books
say each candidate has been."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, post_load, validate

from ..db.models import Discrepancy
from ..domain.actors import Role
from ..services import discrepancies, sightings
from ..services.sightings import Sighting, SightingReport
from ..services.unit_of_work import UnitOfWork
from .auth import allow, current_actor
from .context import db_session, write
from .fields import Marking, Timestamp
from .stock import CustodyStepSchema, WeaponSchema

blp = Blueprint(
    "sightings",
    __name__,
    url_prefix="/api/v1",
    description="Sightings of weapons outside custody, and traces of a marking",
)


class SightingInSchema(Schema):
    serial = Marking(required=True)
    manufacturer = Marking()
    item_type = fields.String(validate=validate.Length(min=1, max=64))
    observed_at = Timestamp(required=True)
    place = fields.String(required=True, validate=validate.Length(min=1, max=500))
    circumstances = fields.String(
        required=True,
        validate=validate.Length(min=1, max=2000),
        metadata={"description": "e.g. recovered from an armed group, seized, photographed"},
    )

    @post_load
    def to_report(self, data: dict[str, Any], **_: Any) -> SightingReport:
        return SightingReport(**data)


class DiscrepancySummarySchema(Schema):
    id = fields.UUID()
    kind = fields.String()
    severity = fields.String()
    status = fields.String()
    depot = fields.String(attribute="depot.code", allow_none=True)
    holder = fields.String(attribute="holder.ref", allow_none=True)
    subject = fields.Function(lambda d: _subject(d))
    detected_at = fields.AwareDateTime()
    summary = fields.String()


def _subject(discrepancy: Discrepancy) -> dict[str, Any]:
    return {k: str(v) for k, v in discrepancies.subject_of(discrepancy).items()}


class SightingSchema(Schema):
    id = fields.UUID(metadata={"description": "the sighting's id; its audit subject"})
    serial = fields.String(attribute="report.serial")
    manufacturer = fields.String(attribute="report.manufacturer", allow_none=True)
    item_type = fields.String(attribute="report.item_type", allow_none=True)
    observed_at = fields.AwareDateTime(attribute="report.observed_at")
    place = fields.String(attribute="report.place")
    circumstances = fields.String(attribute="report.circumstances")
    recorded_at = fields.AwareDateTime()
    weapon = fields.Nested(WeaponSchema, allow_none=True)
    books_holder = fields.String(
        allow_none=True, metadata={"description": "where the books had the weapon when sighted"}
    )
    books_status = fields.String(allow_none=True)
    discrepancy = fields.Nested(DiscrepancySummarySchema, allow_none=True)
    opened = fields.Boolean(
        metadata={
            "description": "true if this sighting opened the discrepancy; false if it was "
            "already open (or none applies)"
        }
    )
    audit_seq = fields.Integer(allow_none=True)


class TraceArgs(Schema):
    serial = Marking(required=True)
    manufacturer = Marking()


class AccountableHolderSchema(Schema):
    holder = fields.String(metadata={"description": "the last depot or unit that held it"})
    depot = fields.String(
        allow_none=True, metadata={"description": "the depot answering for it (a unit's issuer)"}
    )
    since = fields.AwareDateTime(
        metadata={"description": "when the movement that put it there happened (occurred_at)"}
    )
    recorded_at = fields.AwareDateTime(
        metadata={"description": "when that movement was posted to the books"}
    )
    movement_id = fields.UUID()


class TraceCandidateSchema(Schema):
    weapon = fields.Nested(WeaponSchema)
    chain = fields.List(fields.Nested(CustodyStepSchema))
    last_accountable_holder = fields.Nested(
        AccountableHolderSchema, attribute="last_accountable", allow_none=True
    )


class TraceSchema(Schema):
    serial = fields.String()
    manufacturer = fields.String(allow_none=True)
    items = fields.List(fields.Nested(TraceCandidateSchema))


def present(sighting: Sighting, uow: UnitOfWork) -> Any:
    sighting.audit_seq = uow.audit_seq
    return SightingSchema().dump(sighting)


@blp.route("/sightings")
class Sightings(MethodView):
    @allow(Role.ADMIN, Role.MONITOR)
    @blp.arguments(SightingInSchema)
    @blp.response(201, SightingSchema)
    def post(self, report: SightingReport) -> Response:
        """Record a sighting; opens sighting_outside_custody or unknown_serial_sighted"""
        return write(lambda uow: sightings.record_sighting(uow, report), present)


@blp.route("/trace")
class Trace(MethodView):
    @allow(Role.ADMIN, Role.AUDITOR, Role.MONITOR)
    @blp.arguments(TraceArgs, location="query")
    @blp.response(200, TraceSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The registered weapons a marking may be (up to 100), each with its chain of custody
        and last accountable holder"""
        items = sightings.trace(
            db_session(), current_actor(), args["serial"], args.get("manufacturer")
        )
        return {"serial": args["serial"], "manufacturer": args.get("manufacturer"), "items": items}
