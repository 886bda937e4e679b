"""Events for monitors, written to the outbox in the transaction that caused them; the worker
delivers them as webhooks and the alert feed reads them."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.models import OutboxEvent
from .unit_of_work import UnitOfWork, jsonable


def publish(
    uow: UnitOfWork,
    event_type: str,
    data: dict[str, Any],
    *,
    depot: str | None = None,
    kind: str | None = None,
    severity: str | None = None,
) -> None:
    """Queue `event_type` (e.g. "discrepancy.opened") with its `data`; filters use the rest.
    `run_write` inserts the queued rows of `outbox_events` after the audit record (see there)."""
    uow.events.append(
        {
            "id": uuid.uuid4(),
            "type": event_type,
            "occurred_at": uow.now,
            "depot": depot,
            "kind": kind,
            "severity": severity,
            "payload": json.dumps(jsonable(data), separators=(",", ":")),
            "dispatched": False,
        }
    )


def newest_first(
    session: Session, *, before: int | None = None, limit: int = 50, event_type: str | None = None
) -> list[OutboxEvent]:
    """Events newest first (the feed reads oldest first from a cursor; people read the latest)."""
    stmt = select(OutboxEvent)
    if before is not None:
        stmt = stmt.where(OutboxEvent.seq < before)
    if event_type:
        stmt = stmt.where(OutboxEvent.type == event_type)
    return list(session.scalars(stmt.order_by(OutboxEvent.seq.desc()).limit(limit)))
