"""The discrepancy worklist (filtered and paged like the API, or one CSV), each case with the
timeline of its events, and the forms that note, investigate or resolve it."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response, redirect, render_template, request, stream_with_context, url_for
from flask.typing import ResponseReturnValue

from ..api.context import read_session
from ..api.discrepancies import DiscrepancyFilterSchema, EventInSchema, csv_rows
from ..api.pagination import keyset_page
from ..db.models import Discrepancy
from ..db.models.oversight import DISCREPANCY_STATUSES, SEVERITIES
from ..domain.discrepancies import TRANSITIONS, DiscrepancyKind
from ..domain.policy import Action, Outcome, decide
from ..services import discrepancies
from ..services.errors import Invalid
from ..services.unit_of_work import UnitOfWork
from .access import api_allows, require
from .base import actor, bp, run

PAGE_SIZE = 50
FILTERS = ("depot", "kind", "severity", "status")


def _filters() -> dict[str, Any]:
    """The query's filters and page, checked by the API's own schema."""
    wanted = (*FILTERS, "after", "limit", "format")
    given = {k: v for k, v in request.args.items() if v and k in wanted}
    given.setdefault("limit", str(PAGE_SIZE))
    errors = DiscrepancyFilterSchema().validate(given)
    if errors:
        raise Invalid("the filters are not valid", errors=errors)
    loaded: dict[str, Any] = DiscrepancyFilterSchema().load(given)
    return loaded


@bp.get("/discrepancies")
def discrepancy_list() -> ResponseReturnValue:
    who = actor()
    require(who, "discrepancies.Discrepancies")
    args = _filters()
    filters = {k: args.pop(k) for k in FILTERS if k in args}
    session = read_session()
    stmt = discrepancies.discrepancies_query(session, who, **filters)
    if args.pop("format") == "csv":
        return Response(
            stream_with_context(csv_rows(session, stmt)),
            mimetype="text/csv",
            headers={"Content-Disposition": 'attachment; filename="discrepancies.csv"'},
        )
    page = keyset_page(session, stmt, Discrepancy.seq, args)
    return render_template(
        "console/discrepancies.html",
        page=page,
        filters=filters,
        statuses=DISCREPANCY_STATUSES,
        severities=SEVERITIES,
        kinds=[str(k) for k in DiscrepancyKind],
        first_page=not args.get("after"),
        limit=args["limit"] if args["limit"] != PAGE_SIZE else None,
    )


@bp.get("/discrepancies/<uuid:discrepancy_id>")
def discrepancy_detail(discrepancy_id: uuid.UUID) -> ResponseReturnValue:
    who = actor()
    require(who, "discrepancies.DiscrepancyById")
    session = read_session()
    found = discrepancies.get_visible(session, who, discrepancy_id)
    depot = found.depot.code if found.depot else None
    # What the forms offer is what the service would accept: the status allows it and so does
    # the policy (a clerk may only note).
    actions = [
        action
        for action, (allowed_from, _) in TRANSITIONS.items()
        if found.status in allowed_from
        and decide(Action(f"discrepancy.{action}"), who, depot=depot).outcome
        is not Outcome.FORBIDDEN
    ]
    return render_template(
        "console/discrepancy.html",
        d=found,
        subject=discrepancies.subject_of(found),
        events=discrepancies.events_of(session, found),
        actions=actions if api_allows(who, "discrepancies.DiscrepancyEvents", "post") else [],
        done=request.args.get("done"),
    )


@bp.post("/discrepancies/<uuid:discrepancy_id>/events")
def discrepancy_event(discrepancy_id: uuid.UUID) -> ResponseReturnValue:
    who = actor()
    require(who, "discrepancies.DiscrepancyEvents", "post")
    form = {k: v for k, v in request.form.items() if k in ("action", "note", "movement_id") and v}
    errors = EventInSchema().validate(form)
    if errors:
        raise Invalid("the form is not complete", errors=errors)
    args = EventInSchema().load(form)

    def add(uow: UnitOfWork) -> str:
        discrepancies.get_visible(uow.session, uow.actor, discrepancy_id)
        discrepancies.add_event(
            uow, discrepancy_id, args["action"], args.get("note"), args.get("movement_id")
        )
        return str(args["action"])

    done = run(add)
    return redirect(
        url_for("console.discrepancy_detail", discrepancy_id=discrepancy_id, done=done), code=303
    )
