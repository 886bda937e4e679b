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
from ..services.errors import Invalid
from ..services.subscriptions import EVENT_TYPES
from .auth import allow
from .context import db_session
from .pagination import PageArgs, decode_cursor, encode_cursor, page_of

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


class AlertFilterSchema(PageArgs):
    type = fields.String(validate=validate.OneOf(EVENT_TYPES))


@blp.route("")
class Alerts(MethodView):
    @allow(Role.ADMIN, Role.AUDITOR, Role.MONITOR)
    @blp.arguments(AlertFilterSchema, location="query")
    @blp.response(200, page_of(AlertSchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Events, oldest first. Unlike other lists, `next` is set on the last page too (null only
        while there is nothing at all): keep it and ask again with ?after= for what came since;
        fewer items than `limit` means you are up to date."""
        stmt = select(OutboxEvent)
        if "type" in args:
            stmt = stmt.where(OutboxEvent.type == args.pop("type"))
        after = decode_cursor(args["after"]) if args.get("after") else None
        if after is not None:
            if not isinstance(after, int) or isinstance(after, bool):
                raise Invalid("not a cursor this API gave out", field="after")
            stmt = stmt.where(OutboxEvent.seq > after)
        events = list(db_session().scalars(stmt.order_by(OutboxEvent.seq).limit(args["limit"])))
        last = events[-1].seq if events else after
        return {
            "items": [delivery.alert(event) for event in events],
            "next": encode_cursor(last) if last is not None else None,
        }
