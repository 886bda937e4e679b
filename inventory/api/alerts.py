"""`/api/v1/alerts`: the outbox as a feed, for monitors without a webhook endpoint."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from ..db.models import OutboxEvent
from ..domain.actors import Role
from ..services import delivery
from ..services.subscriptions import EVENT_TYPES
from .auth import allow
from .context import db_session
from .pagination import DescendingPageArgs, after_condition, decode_cursor, encode_cursor, page_of

blp = Blueprint(
    "alerts",
    __name__,
    url_prefix="/api/v1/alerts",
    description="The events webhooks deliver, as a feed read with ?after=<cursor>",
)


class AlertSchema(Schema):
    id = fields.UUID(metadata={"description": "the webhook-id of the same event"})
    type = fields.String()
    timestamp = fields.String(metadata={"description": "when it happened (ISO 8601, UTC)"})
    data = fields.Dict()


class AlertFilterSchema(DescendingPageArgs):
    type = fields.String(validate=validate.OneOf(EVENT_TYPES))


@blp.route("")
class Alerts(MethodView):
    @allow(Role.ADMIN, Role.AUDITOR, Role.MONITOR)
    @blp.arguments(AlertFilterSchema, location="query")
    @blp.response(200, page_of(AlertSchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Events, newest first: what happened lately. To follow the feed, read it with
        `order=asc`: then `next` is set on the last page too (null only while there is nothing
        at all); keep it and ask again with ?after= for what came since; fewer items than
        `limit` means you are up to date. Newest first, `next` is null on the last page."""
        order, keys = args["order"], [OutboxEvent.seq]
        stmt = select(OutboxEvent)
        if "type" in args:
            stmt = stmt.where(OutboxEvent.type == args.pop("type"))
        after = decode_cursor(keys, args["after"], order) if args.get("after") else None
        if after is not None:
            stmt = stmt.where(after_condition(keys, after, order))
        seq = OutboxEvent.seq.asc() if order == "asc" else OutboxEvent.seq.desc()
        events = list(db_session().scalars(stmt.order_by(seq).limit(args["limit"] + 1)))
        more, events = len(events) > args["limit"], events[: args["limit"]]
        if order == "asc":  # a feed: where to ask again, even when up to date
            last = [events[-1].seq] if events else after
        else:
            last = [events[-1].seq] if events and more else None
        return {
            "items": [delivery.alert(event) for event in events],
            "next": encode_cursor(keys, last, order) if last is not None else None,
        }
