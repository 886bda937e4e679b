"""The accountability report as a page, as CSV and as PDF, for any as-of time."""

from __future__ import annotations

from datetime import datetime

from flask import Response, render_template, request
from flask.typing import ResponseReturnValue

from ..api.context import db_session, settings
from ..clock import utcnow
from ..services import report_pdf, reports
from ..services.errors import Invalid
from .access import require
from .base import actor, bp


def _as_of() -> datetime | None:
    text = request.args.get("as_of", "").strip()
    if not text:
        return None
    if len(text) <= 16:  # datetime-local gives no zone: the form says UTC
        text += ":00+00:00" if "T" in text else "T00:00:00+00:00"
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise Invalid("as_of is a date and time, e.g. 2026-11-30T23:59", field="as_of") from error


@bp.get("/report")
def report() -> ResponseReturnValue:
    who = actor()
    require(who, "reports.Accountability")
    as_of = _as_of()
    depots = [code.strip() for code in request.args.getlist("depot") if code.strip()] or None
    fmt = request.args.get("format", "html")
    session = db_session()
    if fmt == "pdf":
        paper = report_pdf.gather(session, who, settings(), depots, as_of, utcnow())
        return Response(
            report_pdf.render(paper),
            mimetype="application/pdf",
            headers={"Content-Disposition": 'attachment; filename="accountability.pdf"'},
        )
    found = reports.accountability(session, who, settings(), depots, as_of)
    if fmt == "csv":
        return Response(
            reports.as_csv(found),
            mimetype="text/csv",
            headers={"Content-Disposition": 'attachment; filename="accountability.csv"'},
        )
    unaccounted = reports.unaccounted_weapons(session, who, settings(), depots, found.as_of)
    return render_template(
        "console/report.html",
        report=found,
        unaccounted=unaccounted,
        as_of=request.args.get("as_of", ""),
        depots=depots or [],
    )
