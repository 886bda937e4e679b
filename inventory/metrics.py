"""`GET /metrics`: what an operator alerts on, in Prometheus' text format (prometheus-client).

Two kinds of figures:
- counted by the serving processes as requests pass: requests by route and status, their
  latency, movements posted by kind. Under `inventory serve` several processes answer requests;
  each writes its figures to files in PROMETHEUS_MULTIPROC_DIR (the server sets a fresh one when
  none is given) and a scrape adds them all up, whichever process answers it.
- read from the database when scraped, so they are the same whichever process answers: open
  discrepancies by kind and severity, the webhook backlog and the age of the oldest event still
  waiting for delivery, the audit head's seq, and the age of the last signed checkpoint.

Who may read it: a bearer token with a role that already sees every depot (admin, auditor,
monitor), as for the rest of the API. The figures are not public: counts of open critical
discrepancies say where weapons are missing. Clerks are refused because their tokens are scoped
to their depots and these are totals over all of them. A token rather than a separate listening
address: the server has one listener, Prometheus sends bearer tokens (`authorization` in the
scrape config), and a token can be revoked and is named in the access log.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from .api.auth import Unauthorized
from .api.context import db_session
from .clock import utcnow
from .db.models import AuditCheckpoint, AuditHead, Delivery, Discrepancy, OutboxEvent
from .domain.actors import Role
from .domain.movements import Kind
from .services import tokens
from .services.errors import Forbidden

READERS = frozenset({Role.ADMIN, Role.AUDITOR, Role.MONITOR})
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter(
    "inventory_http_requests_total",
    "HTTP requests answered, by route template and status",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "inventory_http_request_duration_seconds",
    "Time from the request reaching the app to its response, by route template",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
MOVEMENTS = Counter(
    "inventory_movements_posted_total",
    "Movements posted through the API (201 answers to POST /api/v1/movements), by kind",
    ["kind"],
)
KINDS = frozenset(str(k) for k in Kind)


class DatabaseCollector(Collector):
    """The figures read from the database at scrape time (one short read transaction)."""

    def __init__(self, session: Session, now: datetime) -> None:
        self.session, self.now = session, now

    def collect(self) -> Iterator[GaugeMetricFamily]:
        session = self.session
        try:
            open_ = GaugeMetricFamily(
                "inventory_discrepancies_open",
                "Discrepancies not yet resolved (open or investigating), by kind and severity",
                labels=["kind", "severity"],
            )
            for kind, severity, count in session.execute(
                select(Discrepancy.kind, Discrepancy.severity, func.count())
                .where(Discrepancy.status != "resolved")
                .group_by(Discrepancy.kind, Discrepancy.severity)
            ):
                open_.add_metric([kind, severity], count)
            yield open_

            undispatched = session.scalar(
                select(func.count()).where(OutboxEvent.dispatched.is_(False))
            )
            pending = session.scalar(select(func.count()).where(Delivery.status == "pending"))
            yield GaugeMetricFamily(
                "inventory_outbox_undispatched_events",
                "Events not yet fanned out to subscriptions by a worker",
                value=undispatched or 0,
            )
            yield GaugeMetricFamily(
                "inventory_webhook_deliveries_pending",
                "Webhook deliveries not yet delivered or given up",
                value=pending or 0,
            )
            oldest = session.scalar(
                select(func.min(OutboxEvent.occurred_at)).where(
                    or_(
                        OutboxEvent.dispatched.is_(False),
                        OutboxEvent.seq.in_(
                            select(Delivery.event_seq).where(Delivery.status == "pending")
                        ),
                    )
                )
            )
            yield GaugeMetricFamily(
                "inventory_outbox_oldest_undelivered_event_age_seconds",
                "Age (from its occurred_at) of the oldest event not yet fanned out or with a "
                "delivery still pending; 0 when there is none",
                value=0 if oldest is None else (self.now - oldest).total_seconds(),
            )
            head = session.scalar(select(AuditHead.seq))
            yield GaugeMetricFamily(
                "inventory_audit_head_seq", "Seq of the last audit record", value=head or 0
            )
            last = session.scalar(select(func.max(AuditCheckpoint.at)))
            age = GaugeMetricFamily(
                "inventory_audit_last_checkpoint_age_seconds",
                "Age of the newest signed audit checkpoint (absent before the first)",
            )
            if last is not None:
                age.add_metric([], (self.now - last).total_seconds())
            yield age
        finally:
            session.rollback()


class _ThisProcess(Collector):
    def collect(self) -> Iterator[object]:  # type: ignore[override]
        yield from REGISTRY.collect()


def exposition(session: Session, now: datetime | None = None) -> bytes:
    """The whole scrape: every serving process's counters, then the database's figures."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROCESS_ENV):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    registry.register(DatabaseCollector(session, now or utcnow()))
    return generate_latest(registry)


def _authorize() -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized("send Authorization: Bearer <token> (admin, auditor or monitor)")
    session = db_session()
    actor = tokens.authenticate(session, secret.strip())
    session.rollback()
    if actor is None:
        raise Unauthorized("the token is unknown or revoked")
    g.actor = actor
    if actor.role not in READERS:
        raise Forbidden(
            f"role {actor.role} may not read /metrics; allowed: admin, auditor, monitor"
        )


def init_app(app: Flask) -> None:
    @app.get("/metrics")
    def metrics() -> Response:
        _authorize()
        return Response(exposition(db_session()), content_type=CONTENT_TYPE_LATEST)

    @app.before_request
    def start_clock() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def count(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        method = request.method
        REQUESTS.labels(method, route, str(response.status_code)).inc()
        started = g.get("metrics_started")
        if started is not None:
            LATENCY.labels(method, route).observe(time.perf_counter() - started)
        if method == "POST" and route == "/api/v1/movements" and response.status_code == 201:
            body = request.get_json(silent=True)
            kind = body.get("kind") if isinstance(body, dict) else None
            MOVEMENTS.labels(kind if kind in KINDS else "other").inc()
        return response
