"""Transfers in transit (and overdue) with their age; end-use verifications due or overdue."""

from __future__ import annotations

from flask import render_template, request
from flask.typing import ResponseReturnValue

from ..api.context import db_session
from ..api.pagination import keyset_page
from ..clock import utcnow
from ..db.models import EndUseVerification, Transfer
from ..services import transfers, verifications
from ..services.errors import Invalid
from ..services.transfers import TransferView
from .access import require
from .base import actor, bp

PAGE_SIZE = 50


def _page_args() -> dict[str, object]:
    after = request.args.get("after")
    return {"limit": PAGE_SIZE, **({"after": after} if after else {})}


@bp.get("/transfers")
def transfer_list() -> ResponseReturnValue:
    who, session, now = actor(), db_session(), utcnow()
    require(who, "transfers.Transfers")
    overdue = request.args.get("overdue") == "1"
    stmt = transfers.transfers_query(session, who, status="in_transit", overdue=overdue, now=now)
    page = keyset_page(session, stmt, Transfer.id, _page_args())
    views = [TransferView(transfer, now) for transfer in page["items"]]
    views.sort(key=lambda view: view.transfer.dispatched_at)
    return render_template(
        "console/transfers.html", views=views, next=page["next"], overdue=overdue
    )


@bp.get("/verifications")
def verification_list() -> ResponseReturnValue:
    who, session, now = actor(), db_session(), utcnow()
    require(who, "verifications.Verifications")
    status = request.args.get("status", "overdue")
    if status not in ("due", "overdue"):
        raise Invalid("status is due or overdue", field="status")
    stmt = verifications.verifications_query(session, status=status, now=now)
    page = keyset_page(session, stmt, EndUseVerification.id, _page_args())
    views = verifications.views_of(session, page["items"], now)
    views.sort(key=lambda view: view.verification.due_at)
    return render_template(
        "console/verifications.html", views=views, next=page["next"], status=status
    )
