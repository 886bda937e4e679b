"""`/api/v1/discrepancies`: what is unaccounted for, read as JSON pages or one CSV, and driven
through its lifecycle (note, investigate, resolve)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

from flask import Response, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy.orm import Session

from ..db.models import Discrepancy
from ..db.models.oversight import DISCREPANCY_STATUSES, SEVERITIES
from ..domain.actors import Role
from ..domain.discrepancies import TRANSITIONS, DiscrepancyKind
from ..services import audit_log, discrepancies, sweep
from ..services.csv_export import CSV_SAFETY, CsvWriter
from ..services.unit_of_work import UnitOfWork
from .auth import ALL_ROLES, allow, current_actor
from .context import db_session, write
from .pagination import AscendingPageArgs, keyset_page, page_of

blp = Blueprint(
    "discrepancies",
    __name__,
    url_prefix="/api/v1/discrepancies",
    description="What is unaccounted for, and how each case was settled",
)

CSV_COLUMNS = (
    "id",
    "kind",
    "severity",
    "status",
    "depot",
    "holder",
    "weapon_id",
    "lot_id",
    "quantity",
    "transfer_id",
    "stocktake_id",
    "verification_id",
    "movement_id",
    "detected_at",
    "resolved_at",
    "summary",
)


class SubjectSchema(Schema):
    weapon_id = fields.UUID()
    lot_id = fields.UUID()
    quantity = fields.Integer()
    transfer_id = fields.UUID()
    stocktake_id = fields.UUID()
    verification_id = fields.UUID()
    movement_id = fields.UUID()


class DiscrepancySchema(Schema):
    id = fields.UUID()
    kind = fields.String()
    severity = fields.String()
    status = fields.String()
    depot = fields.Function(lambda d: d.depot.code if d.depot else None)
    holder = fields.Function(lambda d: d.holder.ref if d.holder else None)
    subject = fields.Function(
        lambda d: SubjectSchema().dump(discrepancies.subject_of(d)),
        metadata={"description": "what it is about: weapon_id | lot_id + quantity | ..."},
    )
    detected_at = fields.AwareDateTime()
    resolved_at = fields.AwareDateTime(allow_none=True)
    summary = fields.String()


class EventSchema(Schema):
    at = fields.AwareDateTime()
    actor = fields.String()
    action = fields.String()
    note = fields.String(allow_none=True)
    movement_id = fields.UUID(allow_none=True)


class DiscrepancyDetailSchema(DiscrepancySchema):
    events = fields.List(fields.Nested(EventSchema))


class DiscrepancyFilterSchema(AscendingPageArgs):
    status = fields.String(validate=validate.OneOf(DISCREPANCY_STATUSES))
    kind = fields.String(validate=validate.OneOf([str(k) for k in DiscrepancyKind]))
    depot = fields.String(metadata={"description": "depot code"})
    severity = fields.String(validate=validate.OneOf(SEVERITIES))
    format = fields.String(
        load_default="json",
        validate=validate.OneOf(("json", "csv")),
        metadata={
            "description": "csv: every match as one text/csv download (no paging); a cell of "
            + CSV_SAFETY
        },
    )


class EventInSchema(Schema):
    action = fields.String(required=True, validate=validate.OneOf(sorted(TRANSITIONS)))
    note = fields.String(validate=validate.Length(max=4000))
    movement_id = fields.UUID(metadata={"description": "the movement that settled it"})


def with_events(session: Session, discrepancy: Discrepancy) -> SimpleNamespace:
    """The discrepancy and its events, as `DiscrepancyDetailSchema` dumps them."""
    values = {name: getattr(discrepancy, name) for name in Discrepancy.__mapper__.attrs.keys()}
    return SimpleNamespace(**values, events=discrepancies.events_of(session, discrepancy))


def csv_rows(session: Session, stmt: Any, order: str = "asc") -> Iterator[str]:
    """The header, then one line per discrepancy; plain values only (no JSON in cells), through
    the one CSV writer, so no cell is a formula."""
    out = CsvWriter()
    yield out.row(CSV_COLUMNS)
    seq = Discrepancy.seq.asc() if order == "asc" else Discrepancy.seq.desc()
    try:
        rows = session.scalars(stmt.order_by(seq).execution_options(yield_per=1000))
        for discrepancy in rows:
            subject = discrepancies.subject_of(discrepancy)
            yield out.row(
                [
                    discrepancy.id,
                    discrepancy.kind,
                    discrepancy.severity,
                    discrepancy.status,
                    discrepancy.depot.code if discrepancy.depot else "",
                    discrepancy.holder.ref if discrepancy.holder else "",
                    *(subject.get(name, "") for name in CSV_COLUMNS[6:13]),
                    audit_log.timestamp(discrepancy.detected_at),
                    audit_log.timestamp(discrepancy.resolved_at) if discrepancy.resolved_at else "",
                    discrepancy.summary,
                ]
            )
    finally:
        # The body streams after the request's teardown closed the session: close it again.
        session.close()


@blp.route("")
class Discrepancies(MethodView):
    @allow(*ALL_ROLES)
    @blp.arguments(DiscrepancyFilterSchema, location="query")
    @blp.response(200, page_of(DiscrepancySchema))
    def get(self, args: dict[str, Any]) -> Any:
        """List discrepancies, oldest first (`order=desc` for newest first; clerks: their
        depots); `format=csv` to download"""
        filters = {k: args.pop(k) for k in ("status", "kind", "depot", "severity") if k in args}
        session = db_session()
        stmt = discrepancies.discrepancies_query(session, current_actor(), **filters)
        if args.pop("format") == "csv":
            return Response(
                stream_with_context(csv_rows(session, stmt, args["order"])),
                mimetype="text/csv",
                headers={"Content-Disposition": 'attachment; filename="discrepancies.csv"'},
            )
        return keyset_page(session, stmt, Discrepancy.seq, args)


@blp.route("/<uuid:discrepancy_id>")
class DiscrepancyById(MethodView):
    @allow(*ALL_ROLES)
    @blp.response(200, DiscrepancyDetailSchema)
    def get(self, discrepancy_id: uuid.UUID) -> SimpleNamespace:
        """One discrepancy with its events, oldest first"""
        session = db_session()
        found = discrepancies.get_visible(session, current_actor(), discrepancy_id)
        return with_events(session, found)


@blp.route("/<uuid:discrepancy_id>/events")
class DiscrepancyEvents(MethodView):
    @allow(Role.ADMIN, Role.AUDITOR, Role.CLERK)
    @blp.arguments(EventInSchema)
    @blp.response(201, DiscrepancyDetailSchema)
    def post(self, args: dict[str, Any], discrepancy_id: uuid.UUID) -> Response:
        """Add a note, start investigating, or resolve (with a note saying how). Clerks may
        only add notes, in their depots"""

        def add(uow: UnitOfWork) -> Discrepancy:
            discrepancies.get_visible(uow.session, uow.actor, discrepancy_id)
            return discrepancies.add_event(
                uow, discrepancy_id, args["action"], args.get("note"), args.get("movement_id")
            )

        return write(
            add, lambda found, uow: DiscrepancyDetailSchema().dump(with_events(uow.session, found))
        )


sweep_blp = Blueprint(
    "sweep",
    __name__,
    url_prefix="/api/v1/sweep",
    description="The time-based checks (the worker runs them every minute)",
)


class SweepResultSchema(Schema):
    now = fields.AwareDateTime()
    opened = fields.Dict(
        keys=fields.String(), values=fields.Integer(), metadata={"description": "per kind"}
    )
    total = fields.Integer()
    discrepancies = fields.List(fields.UUID(), metadata={"description": "discrepancies opened"})


@sweep_blp.route("")
class Sweep(MethodView):
    @allow(Role.ADMIN)
    @sweep_blp.response(200, SweepResultSchema)
    def post(self) -> Response:
        """Run the time-based checks now, by the server's clock: overdue transfers, returns,
        physical verifications and end-use verifications. Idempotent"""
        return write(lambda uow: sweep.run_sweep(uow, uow.now), SweepResultSchema(), status=200)
