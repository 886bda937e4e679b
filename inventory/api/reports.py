"""`/api/v1/reports/accountability`: what each depot answers for and how much of it is
unaccounted for, now or as the books stood at any past time; JSON or CSV."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from ..clock import utcnow
from ..domain.actors import Role
from ..services import report_pdf, reports
from ..services.csv_export import CSV_SAFETY
from ..services.errors import Invalid
from .auth import allow, current_actor
from .context import db_session, settings
from .fields import Timestamp

blp = Blueprint(
    "reports", __name__, url_prefix="/api/v1/reports", description="Accountability reports"
)


class ReportArgs(Schema):
    depot = fields.List(
        fields.String(),
        metadata={"description": "depot code; repeat for several (default: all you may read)"},
    )
    as_of = Timestamp(metadata={"description": "the books at that time; default now"})
    format = fields.String(
        load_default="json",
        validate=validate.OneOf(("json", "csv", "pdf")),
        metadata={
            "description": "csv: one row per depot; a cell of "
            + CSV_SAFETY
            + ". pdf: tables per depot, unaccounted weapons, audit head"
        },
    )
    dictionary = fields.Boolean(
        load_default=False,
        metadata={
            "description": "with format=csv: the CSV's data dictionary (column,definition) "
            "instead of the report"
        },
    )


class AmmunitionTallySchema(Schema):
    on_books = fields.Integer()
    in_store = fields.Integer()
    issued = fields.Integer()
    in_transit = fields.Integer()
    lost = fields.Integer()
    unaccounted = fields.Integer()


class WeaponTallySchema(AmmunitionTallySchema):
    verified_within_policy = fields.Integer()


class TotalsSchema(Schema):
    weapons = fields.Nested(WeaponTallySchema)
    ammunition = fields.Nested(
        AmmunitionTallySchema, metadata={"description": "rounds, all lots together"}
    )
    open_discrepancies = fields.Dict(keys=fields.String(), values=fields.Integer())
    accountability_rate = fields.Float(
        metadata={"description": "weapons: 1 - weapons unaccounted / weapons on books"}
    )
    rounds_accountability_rate = fields.Float(
        metadata={"description": "rounds: 1 - rounds unaccounted / rounds on books"}
    )


class DepotAccountSchema(TotalsSchema):
    depot = fields.String()


class ReportSchema(Schema):
    as_of = fields.String(metadata={"format": "date-time", "description": "the books at"})
    depots = fields.List(fields.Nested(DepotAccountSchema))
    totals = fields.Nested(TotalsSchema)


@blp.route("/accountability")
class Accountability(MethodView):
    @allow(Role.ADMIN, Role.AUDITOR, Role.MONITOR, Role.CLERK)
    @blp.arguments(ReportArgs, location="query")
    @blp.response(200, ReportSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """Per depot and in total: weapons and rounds on the books, in store, issued, in transit,
        lost and unaccounted for, open discrepancies by kind, and the accountability rate.
        Clerks see their depots. `format=csv`: one row per depot; `format=csv&dictionary=1`:
        the definition of every CSV column; `format=pdf`: a printable report that also lists
        each unaccounted weapon and the audit log's head"""
        if args["dictionary"]:
            if args["format"] != "csv":
                raise Invalid(
                    "dictionary=1 describes the CSV's columns; add format=csv", field="dictionary"
                )
            return Response(
                reports.dictionary_csv(),
                mimetype="text/csv",
                headers={
                    "Content-Disposition": 'attachment; filename="accountability-columns.csv"'
                },
            )
        if args["format"] == "pdf":
            paper = report_pdf.gather(
                db_session(),
                current_actor(),
                settings(),
                args.get("depot"),
                args.get("as_of"),
                utcnow(),
            )
            return Response(
                report_pdf.render(paper),
                mimetype="application/pdf",
                headers={"Content-Disposition": 'attachment; filename="accountability.pdf"'},
            )
        report = reports.accountability(
            db_session(), current_actor(), settings(), args.get("depot"), args.get("as_of")
        )
        if args["format"] == "csv":
            return Response(
                reports.as_csv(report),
                mimetype="text/csv",
                headers={"Content-Disposition": 'attachment; filename="accountability.csv"'},
            )
        return reports.as_json(report)
