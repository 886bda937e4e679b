"""Alerts for monitors: the events webhooks deliver, newest first."""

from __future__ import annotations

import json

from flask import render_template, request
from flask.typing import ResponseReturnValue

from ..api.context import db_session
from ..services import outbox
from ..services.errors import Invalid
from ..services.subscriptions import EVENT_TYPES
from .access import require
from .base import actor, bp

PAGE_SIZE = 50


@bp.get("/alerts")
def alert_list() -> ResponseReturnValue:
    require(actor(), "alerts.Alerts")
    before_text = request.args.get("before", "")
    if before_text and not before_text.isdigit():
        raise Invalid("before is an event number", field="before")
    event_type = request.args.get("type") or None
    if event_type is not None and event_type not in EVENT_TYPES:
        raise Invalid(f"unknown event type {event_type!r}", field="type")
    events = outbox.newest_first(
        db_session(),
        before=int(before_text) if before_text else None,
        limit=PAGE_SIZE + 1,
        event_type=event_type,
    )
    more = len(events) > PAGE_SIZE
    events = events[:PAGE_SIZE]
    rows = [(event, json.loads(event.payload)) for event in events]
    return render_template(
        "console/alerts.html",
        rows=rows,
        older=events[-1].seq if more else None,
        event_type=event_type,
        types=EVENT_TYPES,
    )
