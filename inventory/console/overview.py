"""The overview: what each depot answers for and how much is unaccounted for, the trend over a
year, open discrepancies by severity, and whether the audit chain still holds."""

from __future__ import annotations

from flask import redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from ..api.context import db_session, settings
from ..clock import utcnow
from ..services import audit_verifications, reports
from ..services import overview as figures
from .access import require
from .base import actor, bp
from .chart import rate_chart


@bp.get("/")
def overview() -> ResponseReturnValue:
    who, session, now = actor(), db_session(), utcnow()
    require(who, "reports.Accountability")
    report = reports.accountability(session, who, settings(), None, None)
    history = figures.history(session, who, settings(), report)
    months = [past.as_of for past in history]
    series: dict[str, list[float | None]] = {a.depot: [] for a in report.depots}
    for past in history:
        by_depot = {a.depot: a for a in past.depots}
        for depot, rates in series.items():
            account = by_depot.get(depot)
            on_books = account is not None and account.weapons["on_books"] > 0
            rates.append(account.accountability_rate if on_books and account else None)
    return render_template(
        "console/overview.html",
        report=report,
        severities=figures.SEVERITY_ORDER,
        open_by_depot=figures.open_by_severity(session, who),
        chain=figures.chain_state(session),
        now=now,
        months=months,
        series=series,
        chart=rate_chart(months, series),
    )


@bp.post("/audit/verify")
def verify_chain() -> ResponseReturnValue:
    """Walk the audit chain now; the overview then shows the verdict and when it ran."""
    who = actor()
    require(who, "audit.AuditVerification")
    audit_verifications.verify_and_record(db_session(), settings(), who, utcnow())
    return redirect(url_for("console.overview") + "#audit-chain", code=303)
