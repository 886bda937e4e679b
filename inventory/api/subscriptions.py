"""`/api/v1/subscriptions`: monitors' webhook subscriptions and the record of their deliveries."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from ..db.models import Delivery, Subscription
from ..db.models.oversight import SEVERITIES
from ..domain.actors import Role
from ..domain.discrepancies import DiscrepancyKind
from ..services import subscriptions
from ..services.subscriptions import EVENT_TYPES, IssuedSubscription
from .auth import allow, current_actor
from .context import db_session, write
from .pagination import PageArgs, decode_cursor, encode_cursor, keyset_page, page_of

blp = Blueprint(
    "subscriptions",
    __name__,
    url_prefix="/api/v1/subscriptions",
    description="Webhook subscriptions for monitors: signed alerts, retried for over a day",
)


class SubscriptionInSchema(Schema):
    url = fields.String(
        required=True,
        validate=validate.Length(min=1, max=2000),
        metadata={"description": "http(s) endpoint on a public address, without credentials"},
    )
    events = fields.List(
        fields.String(validate=validate.OneOf(EVENT_TYPES)),
        required=True,
        validate=validate.Length(min=1),
        metadata={"description": f"event types: {', '.join(EVENT_TYPES)}"},
    )
    depots = fields.List(
        fields.String(validate=validate.Length(min=1, max=64)),
        metadata={"description": "only events about these depots (events without one pass)"},
    )
    kinds = fields.List(
        fields.String(validate=validate.OneOf([str(k) for k in DiscrepancyKind])),
        metadata={"description": "only discrepancies of these kinds"},
    )
    severities = fields.List(
        fields.String(validate=validate.OneOf(SEVERITIES)),
        metadata={"description": "only discrepancies of these severities"},
    )


class SubscriptionSchema(Schema):
    id = fields.UUID()
    url = fields.String()
    events = fields.List(fields.String())
    depots = fields.List(fields.String(), allow_none=True)
    kinds = fields.List(fields.String(), allow_none=True)
    severities = fields.List(fields.String(), allow_none=True)
    created_at = fields.AwareDateTime()
    created_by = fields.String()
    disabled_at = fields.AwareDateTime(allow_none=True)
    disabled_reason = fields.String(allow_none=True)
    consecutive_failures = fields.Integer(
        metadata={"description": "failed delivery attempts in a row (any event)"}
    )
    paused_until = fields.AwareDateTime(
        allow_none=True,
        metadata={"description": "the endpoint kept failing: no delivery is tried before this"},
    )


class IssuedSubscriptionSchema(SubscriptionSchema):
    secret = fields.String(
        metadata={"description": "whsec_…: verifies webhook-signature; shown only now"}
    )


class AttemptSchema(Schema):
    at = fields.AwareDateTime()
    status_code = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    duration_ms = fields.Integer()


class DeliverySchema(Schema):
    id = fields.Integer()
    event_id = fields.UUID(metadata={"description": "the webhook-id"})
    event_type = fields.String()
    status = fields.String(metadata={"description": "pending, delivered or failed"})
    attempt_count = fields.Integer()
    next_attempt_at = fields.AwareDateTime(allow_none=True)
    delivered_at = fields.AwareDateTime(allow_none=True)
    attempts = fields.List(fields.Nested(AttemptSchema))


def _present_issued(issued: IssuedSubscription, _uow: Any) -> dict[str, Any]:
    body: dict[str, Any] = SubscriptionSchema().dump(subscriptions.describe(issued.subscription))
    return {**body, "secret": issued.secret}


def _present(subscription: Subscription, _uow: Any) -> dict[str, Any]:
    body: dict[str, Any] = SubscriptionSchema().dump(subscriptions.describe(subscription))
    return body


@blp.route("")
class Subscriptions(MethodView):
    @allow(Role.ADMIN, Role.MONITOR)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_of(SubscriptionSchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List subscriptions (never their secrets)"""
        stmt = subscriptions.subscriptions_query(current_actor())
        page = keyset_page(db_session(), stmt, Subscription.id, args)
        return {**page, "items": [subscriptions.describe(s) for s in page["items"]]}

    @allow(Role.ADMIN, Role.MONITOR)
    @blp.arguments(SubscriptionInSchema)
    @blp.response(201, IssuedSubscriptionSchema)
    def post(self, data: dict[str, Any]) -> Response:
        """Subscribe a webhook URL. The signing secret is in this response and nowhere else."""
        return write(
            lambda uow: subscriptions.create_subscription(
                uow,
                data["url"],
                data["events"],
                data.get("depots"),
                data.get("kinds"),
                data.get("severities"),
            ),
            _present_issued,
        )


@blp.route("/<uuid:subscription_id>")
class SubscriptionById(MethodView):
    @allow(Role.ADMIN, Role.MONITOR)
    @blp.response(200, SubscriptionSchema)
    def get(self, subscription_id: uuid.UUID) -> dict[str, Any]:
        """One subscription"""
        return subscriptions.describe(
            subscriptions.get_visible(db_session(), current_actor(), subscription_id)
        )

    @allow(Role.ADMIN, Role.MONITOR)
    @blp.response(200, SubscriptionSchema)
    def delete(self, subscription_id: uuid.UUID) -> Response:
        """Unsubscribe: nothing more is delivered, pending deliveries are given up"""
        return write(lambda uow: subscriptions.unsubscribe(uow, subscription_id), _present, 200)


@blp.route("/<uuid:subscription_id>/deliveries")
class Deliveries(MethodView):
    @allow(Role.ADMIN, Role.MONITOR)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_of(DeliverySchema))
    def get(self, args: dict[str, Any], subscription_id: uuid.UUID) -> dict[str, Any]:
        """Deliveries to this subscription, oldest first, each with every attempt made"""
        keys = [Delivery.id]
        after = decode_cursor(keys, args["after"])[0] if args.get("after") else None
        items, last = subscriptions.deliveries_page(
            db_session(), current_actor(), subscription_id, after, args["limit"]
        )
        return {"items": items, "next": encode_cursor(keys, [last]) if last is not None else None}
