"""Delivering outbox events to subscribers as Standard Webhooks: fan-out, claim, POST, record.

Each event is fanned out once into one delivery per matching subscription. A worker claims one
due delivery at a time — `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several workers share the
queue; `BEGIN IMMEDIATE` serialises claims on SQLite — by pushing its `next_attempt_at` one lease
ahead and committing, so no row lock is held during the HTTP call. If the worker dies mid-call,
the lease runs out and any worker retries the delivery; the `webhook-id` (the event id) stays the
same, so receivers can drop duplicates.

Delivery bookkeeping (fan-out, claims, attempts, reschedules) is written in short transactions of
its own, not through `run_write`: it is the state of notifying monitors, not a change to the books,
every attempt is already recorded in delivery_attempts, and one audit record per attempt would fill
the audit log with noise and make every attempt wait on the chain head. What does change who gets
alerts — a subscription disabled after 410 Gone or after its retries ran out — goes through
`run_write` with an audit record.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import random
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ..db.engine import begin_write
from ..db.models import Delivery, DeliveryAttempt, OutboxEvent, Subscription
from ..settings import Settings
from . import audit_log, subscriptions, webhook_urls
from .subscriptions import Filters
from .unit_of_work import MAX_ATTEMPTS, RETRYABLE_SQLSTATES, Context, run_write

log = logging.getLogger(__name__)
T = TypeVar("T")
FAN_OUT_BATCH = 500
MAX_RESPONSE_BYTES = 64 * 1024
BREAKER_AFTER = 3  # failed attempts in a row that open a subscription's circuit


@dataclass(frozen=True)
class Claim:
    """A delivery this worker holds for one attempt, with what it needs to send it."""

    delivery_id: int
    attempt: int  # 1 for the first attempt
    subscription_id: uuid.UUID
    url: str
    secret: str
    event_id: uuid.UUID
    event_type: str
    occurred_at: datetime
    payload: str


@dataclass(frozen=True)
class Answer:
    """What the endpoint said to one attempt: an HTTP status, or why there was none."""

    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


Post = Callable[[str, bytes, dict[str, str], Settings], Answer]


def alert(event: OutboxEvent) -> dict[str, Any]:
    """The event as the alert feed shows it: `{id, type, timestamp, data}`."""
    return {
        "id": event.id,
        "type": event.type,
        "timestamp": audit_log.timestamp(event.occurred_at),
        "data": json.loads(event.payload),
    }


def webhook_body(event_type: str, occurred_at: datetime, payload: str) -> bytes:
    """The webhook body: `{"type", "timestamp", "data"}` as compact JSON."""
    body = {
        "type": event_type,
        "timestamp": audit_log.timestamp(occurred_at),
        "data": json.loads(payload),
    }
    return json.dumps(body, separators=(",", ":")).encode()


def signed_headers(secret: str, webhook_id: str, at: datetime, body: bytes) -> dict[str, str]:
    """Standard Webhooks headers: the signature is base64(HMAC-SHA256(key, "id.timestamp.body"))."""
    timestamp = str(int(at.timestamp()))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(subscriptions.secret_key(secret), signed, hashlib.sha256).digest()
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": "v1," + base64.b64encode(digest).decode("ascii"),
    }


def bookkeeping(session: Session, step: Callable[[Session], T]) -> T:
    """Run `step` in one short write transaction without an audit record (see the module
    docstring for why), retrying on deadlock or serialisation failure."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        session.rollback()
        begin_write(session)
        try:
            result = step(session)
            session.commit()
            return result
        except DBAPIError as error:
            session.rollback()
            if getattr(error.orig, "sqlstate", None) not in RETRYABLE_SQLSTATES:
                raise
            if attempt == MAX_ATTEMPTS:
                raise
            time.sleep(random.uniform(0, 0.01 * 2**attempt))
        except BaseException:
            session.rollback()
            raise
    raise AssertionError("unreachable")


def fan_out(session: Session, now: datetime, limit: int = FAN_OUT_BATCH) -> int:
    """Turn up to `limit` undispatched events into deliveries for the subscriptions they match
    (those that existed when the event happened); return how many events were dispatched."""

    def step(session: Session) -> int:
        events = list(
            session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.dispatched.is_(False))
                .order_by(OutboxEvent.seq)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        if not events:
            return 0
        active = [
            (subscription, Filters.of(subscription))
            for subscription in session.scalars(
                select(Subscription).where(Subscription.disabled_at.is_(None))
            )
        ]
        rows = [
            {
                "subscription_id": subscription.id,
                "event_seq": event.seq,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
            }
            for event in events
            for subscription, filters in active
            if event.occurred_at >= subscription.created_at and filters.matches(event)
        ]
        if rows:
            session.execute(insert(Delivery), rows)
        session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.seq.in_([event.seq for event in events]))
            .values(dispatched=True)
        )
        return len(events)

    return bookkeeping(session, step)


def claim(
    session: Session,
    now: datetime,
    lease: timedelta,
    exclude: Collection[uuid.UUID] = (),
) -> Claim | None:
    """Take the most overdue pending delivery for `lease`, or None if nothing is due. Deliveries
    of subscriptions in `exclude` (this worker is already sending to them) and of paused ones
    (their circuit is open) are left alone."""
    claims = claim_many(session, now, lease, exclude, 1)
    return claims[0] if claims else None


def claim_many(
    session: Session,
    now: datetime,
    lease: timedelta,
    exclude: Collection[uuid.UUID] = (),
    limit: int = 1,
) -> list[Claim]:
    """`claim` up to `limit` deliveries in one transaction, the most overdue first, at most one
    per subscription."""

    def step(session: Session) -> list[Claim]:
        query = (
            select(Delivery.id, Delivery.subscription_id)
            .join(Subscription, Subscription.id == Delivery.subscription_id)
            .where(
                Delivery.status == "pending",
                Delivery.next_attempt_at <= now,
                Subscription.disabled_at.is_(None),
                or_(Subscription.paused_until.is_(None), Subscription.paused_until <= now),
            )
            .order_by(Delivery.next_attempt_at, Delivery.id)
            # a few more than needed: the next ones may belong to subscriptions already chosen
            .limit(limit * 4)
            .with_for_update(skip_locked=True, of=Delivery)
        )
        if exclude:
            query = query.where(Delivery.subscription_id.not_in(list(exclude)))
        chosen: dict[uuid.UUID, int] = {}
        for delivery_id, subscription_id in session.execute(query):
            if subscription_id not in chosen:
                chosen[subscription_id] = delivery_id
                if len(chosen) == limit:
                    break
        claims = []
        for delivery_id in chosen.values():
            delivery = session.get_one(Delivery, delivery_id)
            subscription = session.get_one(Subscription, delivery.subscription_id)
            if subscription.consecutive_failures >= BREAKER_AFTER:
                # Half-open: this one delivery probes the endpoint; the rest wait for its answer.
                subscription.paused_until = now + lease
            event = session.scalars(
                select(OutboxEvent).where(OutboxEvent.seq == delivery.event_seq)
            ).one()
            # Counted when claimed, so a delivery that kills its worker still runs out of retries.
            delivery.attempts += 1
            delivery.next_attempt_at = now + lease
            claims.append(
                Claim(
                    delivery_id=delivery.id,
                    attempt=delivery.attempts,
                    subscription_id=subscription.id,
                    url=subscription.url,
                    secret=subscription.secret,
                    event_id=event.id,
                    event_type=event.type,
                    occurred_at=event.occurred_at,
                    payload=event.payload,
                )
            )
        return claims

    return bookkeeping(session, step)


def send(claim: Claim, now: datetime, settings: Settings, post: Post) -> Answer:
    """Sign the claimed event for this attempt and POST it."""
    body = webhook_body(claim.event_type, claim.occurred_at, claim.payload)
    headers = signed_headers(claim.secret, str(claim.event_id), now, body)
    return post(claim.url, body, headers, settings)


def give_up_reason(claim: Claim, answer: Answer, settings: Settings) -> str | None:
    """Why this answer ends the subscription, if it does: 410 Gone, or no retries left."""
    if answer.status_code == 410:
        return f"the endpoint answered 410 Gone to event {claim.event_id}"
    if not answer.ok and claim.attempt > len(settings.webhook_backoff):
        reason = answer.error or f"HTTP {answer.status_code}"
        return f"event {claim.event_id} failed {claim.attempt} attempts (last: {reason})"
    return None


def record(session: Session, context: Context, claim: Claim, answer: Answer, now: datetime) -> str:
    """Record the attempt and settle the delivery: "delivered", "retry" (rescheduled with
    exponential backoff and jitter) or "failed" (its subscription is then disabled)."""
    reason = give_up_reason(claim, answer, context.settings)
    if reason is None:
        return bookkeeping(session, lambda s: _settle(s, claim, answer, now, context.settings))

    def disable_subscription(uow: Any) -> str:
        outcome = _settle(uow.session, claim, answer, now, context.settings)
        subscription = subscriptions.get(uow.session, claim.subscription_id)
        given_up = subscriptions.disable(uow.session, subscription, now, reason)
        uow.record(
            "subscription.disable",
            f"subscription:{subscription.id}",
            {"url": subscription.url, "reason": reason, "deliveries_given_up": given_up},
        )
        return outcome

    return run_write(session, context, disable_subscription, lambda outcome, _uow: outcome).body


def record_many(
    session: Session, context: Context, finished: list[tuple[Claim, Answer]], now: datetime
) -> list[str]:
    """`record` several attempts: the ones that settle only their delivery in one short
    transaction (in subscription order, so two workers lock rows in the same order), the ones
    that end a subscription each through `record`. Outcomes in the order given."""
    settings = context.settings
    plain = sorted(
        (i for i, (c, a) in enumerate(finished) if give_up_reason(c, a, settings) is None),
        key=lambda i: (str(finished[i][0].subscription_id), finished[i][0].delivery_id),
    )
    outcomes: dict[int, str] = {}
    if plain:

        def step(s: Session) -> list[str]:
            return [_settle(s, *finished[i], now, settings) for i in plain]

        outcomes.update(zip(plain, bookkeeping(session, step), strict=True))
    for i, (claim_, answer) in enumerate(finished):
        if i not in outcomes:
            outcomes[i] = record(session, context, claim_, answer, now)
    return [outcomes[i] for i in range(len(finished))]


def _settle(
    session: Session, claim: Claim, answer: Answer, now: datetime, settings: Settings
) -> str:
    delivery = session.get_one(Delivery, claim.delivery_id, with_for_update=True)
    session.add(
        DeliveryAttempt(
            delivery_id=delivery.id,
            at=now,
            status_code=answer.status_code,
            error=answer.error[:1000] if answer.error else None,
            duration_ms=answer.duration_ms,
        )
    )
    _trip_or_reset(session, claim, answer, now, settings)
    if delivery.status != "pending":
        return delivery.status  # settled meanwhile: unsubscribed, or retried after the lease
    if answer.ok:
        delivery.status, delivery.delivered_at = "delivered", now
        return "delivered"
    if give_up_reason(claim, answer, settings) is not None:
        delivery.status = "failed"
        return "failed"
    wait = settings.webhook_backoff[claim.attempt - 1]
    # Jitter only lengthens the wait, so the schedule still spans at least its nominal total.
    delivery.next_attempt_at = now + wait * random.uniform(1.0, 1.25)
    return "retry"


def _trip_or_reset(
    session: Session, claim: Claim, answer: Answer, now: datetime, settings: Settings
) -> None:
    """The circuit breaker: BREAKER_AFTER failed attempts in a row pause every delivery of the
    subscription (the backoff schedule's waits, growing while it keeps failing); an answer that
    succeeds closes it. A dead or slow endpoint then costs one probe per pause, not one attempt
    (and up to a whole timeout) per pending event."""
    subscription = session.get_one(Subscription, claim.subscription_id, with_for_update=True)
    if answer.ok:
        subscription.consecutive_failures, subscription.paused_until = 0, None
        return
    subscription.consecutive_failures += 1
    over = subscription.consecutive_failures - BREAKER_AFTER
    if over >= 0 and settings.webhook_backoff:
        wait = settings.webhook_backoff[min(over, len(settings.webhook_backoff) - 1)]
        subscription.paused_until = now + wait
        log.warning(
            "subscription %s paused until %s after %d failed attempts in a row (last: %s)",
            subscription.id,
            subscription.paused_until.isoformat(),
            subscription.consecutive_failures,
            answer.error or f"HTTP {answer.status_code}",
        )


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the vetted address, not to whatever the host name resolves to by then."""

    def __init__(self, target: webhook_urls.Target, address: str, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to the vetted address, with SNI and the certificate checked against the host name."""

    def __init__(self, target: webhook_urls.Target, address: str, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=_TLS)
        self.address = address

    def connect(self) -> None:
        raw = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


_TLS = ssl.create_default_context()


class _Deadline:
    """Shuts the connection's socket when the delivery's total time is up, whatever stage it is
    in: a per-read timeout alone lets an endpoint that sends a byte now and then hold a
    delivery for ever."""

    def __init__(self, connection: http.client.HTTPConnection, seconds: float) -> None:
        self.connection = connection
        self.expired = False
        self.timer = threading.Timer(seconds, self._expire)
        self.timer.daemon = True

    def _expire(self) -> None:
        self.expired = True
        sock = self.connection.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> _Deadline:
        self.timer.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.timer.cancel()
        self.connection.close()


def post_webhook(url: str, body: bytes, headers: dict[str, str], settings: Settings) -> Answer:
    """POST `body` to `url` within Settings.webhook_timeout in all (connect, TLS, send, headers,
    body): no redirects, no proxies from the environment.

    The URL is vetted again here against a fresh resolution (a host may resolve elsewhere than when
    it subscribed), and the connection goes to the address that was vetted."""
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    target = webhook_urls.vet(url, allow_private=settings.webhook_allow_private)
    if isinstance(target, str):
        return Answer(None, f"not sent: {target}", 0)
    total = settings.webhook_timeout
    path = target.parts.path or "/"
    if target.parts.query:
        path += "?" + target.parts.query
    kind = _PinnedHTTPSConnection if target.parts.scheme == "https" else _PinnedHTTPConnection
    connection = kind(target, target.addresses[0], timeout=total)
    deadline = _Deadline(connection, total)
    try:
        with deadline:
            # Each vetted address in turn until one accepts the connection (a name may have
            # an IPv6 address the worker cannot reach, and an IPv4 one it can).
            for n, address in enumerate(target.addresses):
                if n:
                    connection.close()
                    remaining = max(0.001, total - (time.monotonic() - started))
                    connection = kind(target, address, timeout=remaining)
                    deadline.connection = connection
                try:
                    connection.connect()
                    break
                except OSError:
                    if n == len(target.addresses) - 1 or deadline.expired:
                        raise
            connection.request(
                "POST",
                path,
                body=body,
                headers={
                    **headers,
                    "Content-Type": "application/json",
                    "User-Agent": "stockpile-worker",
                },
            )
            response = connection.getresponse()
            response.read(MAX_RESPONSE_BYTES)
            status = int(response.status)
    except (OSError, http.client.HTTPException, ValueError) as error:
        if deadline.expired:
            return Answer(None, f"timed out: no full answer within {total:g} s", elapsed())
        return Answer(None, f"{type(error).__name__}: {error}", elapsed())
    if deadline.expired:
        return Answer(None, f"timed out: no full answer within {total:g} s", elapsed())
    if 300 <= status < 400:
        # A redirect could point the worker anywhere, past the URL rule: it counts as a failure.
        return Answer(status, f"HTTP {status}: redirects are not followed", elapsed())
    failure = None if 200 <= status < 300 else f"HTTP {status} {response.reason}"
    return Answer(status, failure, elapsed())
