"""Monitors' webhook subscriptions: which events go to which URL, the secret that signs them, and
the record of every delivery attempt.

A subscription's filters are optional lists; a filter only constrains events that carry that
attribute (an `audit.checkpoint` has no depot, kind or severity, so a depot filter lets it
through). URLs must be http(s), carry no credentials, and — unless Settings.webhook_allow_private
— point at public addresses only, so the worker cannot be aimed at the server's own network.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, false, select, update
from sqlalchemy.orm import Session

from ..db.models import Delivery, DeliveryAttempt, Holder, OutboxEvent, Subscription
from ..db.models.oversight import SEVERITIES
from ..domain.actors import Actor, Role
from ..domain.discrepancies import DiscrepancyKind
from ..domain.policy import Action
from . import accountability, webhook_urls
from .errors import Conflict, Invalid, NotFound
from .unit_of_work import UnitOfWork

EVENT_TYPES = (
    "audit.checkpoint",
    "discrepancy.opened",
    "discrepancy.updated",
    "transfer.received",
    "weapon.recovered",
    "log.uncosigned",  # a signed tree head no witness cosigned in time (services/transparency)
)
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


@dataclass(frozen=True)
class Filters:
    """What a subscription wants: event types, and optionally depots, kinds and severities."""

    events: frozenset[str]
    depots: frozenset[str] | None = None
    kinds: frozenset[str] | None = None
    severities: frozenset[str] | None = None

    @classmethod
    def of(cls, subscription: Subscription) -> Filters:
        def load(text: str | None) -> frozenset[str] | None:
            return None if text is None else frozenset(json.loads(text))

        return cls(
            frozenset(json.loads(subscription.events)),
            load(subscription.depots),
            load(subscription.kinds),
            load(subscription.severities),
        )

    def matches(self, event: OutboxEvent) -> bool:
        """Whether `event` goes to this subscription."""
        return (
            event.type in self.events
            and _passes(self.depots, event.depot)
            and _passes(self.kinds, event.kind)
            and _passes(self.severities, event.severity)
        )


def _passes(wanted: frozenset[str] | None, value: str | None) -> bool:
    return wanted is None or value is None or value in wanted


@dataclass(frozen=True)
class IssuedSubscription:
    subscription: Subscription
    secret: str


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key bytes behind a `whsec_...` secret."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def _filter_list(values: Iterable[str] | None) -> str | None:
    return None if values is None else json.dumps(sorted(set(values)))


def create_subscription(
    uow: UnitOfWork,
    url: str,
    events: list[str],
    depots: list[str] | None = None,
    kinds: list[str] | None = None,
    severities: list[str] | None = None,
) -> IssuedSubscription:
    """Subscribe `url` to `events` (with optional filters); the secret is returned only here."""
    if problem := webhook_urls.url_problem(url, allow_private=uow.settings.webhook_allow_private):
        raise Invalid(problem, field="url")
    if not events:
        raise Invalid("subscribe to at least one event type", field="events")
    if unknown := sorted(set(events) - set(EVENT_TYPES)):
        raise Invalid(
            f"unknown event type {unknown[0]!r}; known: {', '.join(EVENT_TYPES)}", field="events"
        )
    if unknown := sorted(set(kinds or ()) - {str(k) for k in DiscrepancyKind}):
        raise Invalid(f"unknown discrepancy kind {unknown[0]!r}", field="kinds")
    if unknown := sorted(set(severities or ()) - set(SEVERITIES)):
        raise Invalid(
            f"unknown severity {unknown[0]!r}; known: {', '.join(SEVERITIES)}", field="severities"
        )
    if depots:
        known = set(
            uow.session.scalars(
                select(Holder.code).where(Holder.kind == "depot", Holder.code.in_(depots))
            )
        )
        if missing := sorted(set(depots) - known):
            raise Invalid(f"unknown depot {missing[0]}", field="depots")
    accountability.require(uow, Action.SUBSCRIPTION_CREATE)
    _check_owner_limits(uow, url, events)
    secret = new_secret()
    subscription = Subscription(
        id=uuid.uuid4(),
        url=url,
        secret=secret,
        events=json.dumps(sorted(set(events))),
        depots=_filter_list(depots),
        kinds=_filter_list(kinds),
        severities=_filter_list(severities),
        created_at=uow.now,
        created_by=uow.actor.name,
        token_id=uow.actor.token_id,
    )
    uow.session.add(subscription)
    uow.record(
        "subscription.create",
        f"subscription:{subscription.id}",
        {"url": url, "events": events, "depots": depots, "kinds": kinds, "severities": severities},
    )
    return IssuedSubscription(subscription, secret)


def _check_owner_limits(uow: UnitOfWork, url: str, events: list[str]) -> None:
    """409 if the token already has this URL for these events, or its cap of subscriptions."""
    mine = list(
        uow.session.execute(
            select(Subscription.id, Subscription.url, Subscription.events).where(
                _owned_by(uow.actor), Subscription.disabled_at.is_(None)
            )
        )
    )
    wanted = sorted(set(events))
    for sid, their_url, their_events in mine:
        if their_url == url and json.loads(their_events) == wanted:
            raise Conflict(f"subscription {sid} already sends these events to this URL")
    cap = uow.settings.subscriptions_per_token
    if uow.actor.role is not Role.ADMIN and len(mine) >= cap:
        raise Conflict(
            f"this token already has {len(mine)} active subscriptions, the most one may have "
            f"({cap}, INVENTORY_SUBSCRIPTIONS_PER_TOKEN); unsubscribe one first"
        )


def _owned_by(actor: Actor) -> ColumnElement[bool]:
    return Subscription.token_id == actor.token_id if actor.token_id else false()


def subscriptions_query(actor: Actor) -> Select[Subscription]:
    """The subscriptions `actor` may see: admins all, anyone else those their token made."""
    stmt = select(Subscription)
    return stmt if actor.role is Role.ADMIN else stmt.where(_owned_by(actor))


def get(session: Session, subscription_id: uuid.UUID) -> Subscription:
    """The subscription, whoever made it (the worker's view)."""
    subscription = session.get(Subscription, subscription_id)
    if subscription is None:
        raise NotFound(f"no subscription {subscription_id}")
    return subscription


def get_visible(session: Session, actor: Actor, subscription_id: uuid.UUID) -> Subscription:
    """The subscription, or 404 if there is none or it is another token's (for non-admins)."""
    subscription = session.scalar(
        subscriptions_query(actor).where(Subscription.id == subscription_id)
    )
    if subscription is None:
        raise NotFound(f"no subscription {subscription_id}")
    return subscription


def disable(session: Session, subscription: Subscription, now: datetime, reason: str) -> int:
    """Stop deliveries to `subscription`: its pending deliveries are given up. Returns how many."""
    if subscription.disabled_at is None:
        subscription.disabled_at = now
        subscription.disabled_reason = reason[:500]
    given_up = session.execute(
        update(Delivery)
        .where(Delivery.subscription_id == subscription.id, Delivery.status == "pending")
        .values(status="failed")
    )
    return int(given_up.rowcount)  # type: ignore[attr-defined]


def unsubscribe(uow: UnitOfWork, subscription_id: uuid.UUID) -> Subscription:
    """Disable the subscription; nothing more is delivered to it. Unsubscribing twice is a no-op."""
    subscription = get_visible(uow.session, uow.actor, subscription_id)
    accountability.require(uow, Action.SUBSCRIPTION_DELETE)
    was_disabled = subscription.disabled_at is not None
    given_up = disable(uow.session, subscription, uow.now, f"unsubscribed by {uow.actor.name}")
    uow.record(
        "subscription.unsubscribe",
        f"subscription:{subscription.id}",
        {
            "url": subscription.url,
            "already_disabled": was_disabled,
            "deliveries_given_up": given_up,
        },
    )
    return subscription


def describe(subscription: Subscription) -> dict[str, Any]:
    """The subscription as the API shows it: filters as lists, never the secret."""
    filters = Filters.of(subscription)

    def listed(values: frozenset[str] | None) -> list[str] | None:
        return None if values is None else sorted(values)

    return {
        "id": subscription.id,
        "url": subscription.url,
        "events": sorted(filters.events),
        "depots": listed(filters.depots),
        "kinds": listed(filters.kinds),
        "severities": listed(filters.severities),
        "created_at": subscription.created_at,
        "created_by": subscription.created_by,
        "disabled_at": subscription.disabled_at,
        "disabled_reason": subscription.disabled_reason,
        "consecutive_failures": subscription.consecutive_failures or 0,
        "paused_until": subscription.paused_until,
    }


def deliveries_query(subscription_id: uuid.UUID) -> Select[Delivery, uuid.UUID, str]:
    return (
        select(Delivery, OutboxEvent.id, OutboxEvent.type)
        .join(OutboxEvent, OutboxEvent.seq == Delivery.event_seq)
        .where(Delivery.subscription_id == subscription_id)
    )


def deliveries_page(
    session: Session, actor: Actor, subscription_id: uuid.UUID, after: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of the subscription's deliveries, oldest first, each with all of its attempts;
    and the last delivery id when there are more."""
    get_visible(session, actor, subscription_id)
    stmt = deliveries_query(subscription_id)
    if after is not None:
        stmt = stmt.where(Delivery.id > after)
    rows = list(session.execute(stmt.order_by(Delivery.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    attempts: dict[int, list[DeliveryAttempt]] = {}
    if rows:
        for attempt in session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id.in_([row[0].id for row in rows]))
            .order_by(DeliveryAttempt.id)
        ):
            attempts.setdefault(attempt.delivery_id, []).append(attempt)
    items = [
        {
            "id": delivery.id,
            "event_id": event_id,
            "event_type": event_type,
            "status": delivery.status,
            "attempt_count": delivery.attempts,
            "next_attempt_at": delivery.next_attempt_at if delivery.status == "pending" else None,
            "delivered_at": delivery.delivered_at,
            "attempts": attempts.get(delivery.id, []),
        }
        for delivery, event_id, event_type in rows
    ]
    return items, (rows[-1][0].id if more else None)
